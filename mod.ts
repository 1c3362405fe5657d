/**
 * batchspool: a durable, resumable, OpenAI-compatible Batch API server and
 * library for Deno, Bun and Node.
 *
 * @example
 * ```ts
 * import { createApp, createBatchEngine, createFsStorage, createMockTarget } from "@batchspool/batchspool";
 *
 * const storage = await createFsStorage({ dir: "./batchspool-data" });
 * const engine = createBatchEngine({ storage, target: createMockTarget() });
 * await engine.start();
 * const app = createApp({ engine });
 * // Serve it (Deno.serve(app.fetch), Bun.serve({ fetch: app.fetch }), @hono/node-server),
 * // or mount it in your own Hono app: parent.route("/", app).
 * ```
 *
 * @module
 */
export * from "./src/storage/mod.ts";
export { IntegrityError, openEnvelope, sealEnvelope } from "./src/integrity/envelope.ts";
export { createSha256, sha256Hex, type Sha256 } from "./src/integrity/sha256.ts";
export { createApp, type AppOptions } from "./src/http/app.ts";
export { createPrometheusMetrics, type PrometheusMetrics } from "./src/http/operator/metrics.ts";
export { createAdminApp, type OperatorViews } from "./src/http/operator/operator_routes.ts";
export { createWebhookDeliverer, type WebhookDeliverer, type WebhookDelivererOptions, type WebhookEndpoint } from "./src/webhooks/deliverer.ts";
export { signatureHeaders } from "./src/webhooks/signature.ts";
export { DEFAULT_OWNER, ownerOfKey } from "./src/http/access/auth.ts";
export { type BatchEngine, type BatchEngineOptions, type BatchPage, type ClusterView, createBatchEngine } from "./src/engine/engine.ts";
export type { ModelBudget } from "./src/engine/lines/model_budgets.ts";
export { BatchError, type BatchErrorCode } from "./src/batch/model/errors.ts";
export { DEFAULT_ENDPOINTS, parseCompletionWindow } from "./src/batch/model/batch_params.ts";
export { DEFAULT_FILE_LIMITS, type FileLimits, type FileService } from "./src/batch/files/file_service.ts";
export { consoleLogger, type Logger, silentLogger } from "./src/shared/logger.ts";
export type * from "./src/batch/model/objects.ts";
export { RETRY_OF, retryBatch, type RetryResult } from "./src/client/retry.ts";
export type { ClientConfig } from "./src/client/api_client.ts";
export { createHttpTarget, type HttpTargetOptions } from "./src/targets/http_target.ts";
export { createInProcessTarget, type FetchHandler } from "./src/targets/in_process.ts";
export { createMockTarget, type MockTargetOptions } from "./src/targets/mock.ts";
export { type MessagesMode, withMessagesMode } from "./src/targets/messages/messages_target.ts";
export { type ReplicaState, type Target, TargetError, type TargetRequest, type TargetResponse, type UpstreamLimits } from "./src/targets/types.ts";
export { createRoutedTarget, type RoutedTargetOptions, type UpstreamRoute } from "./src/targets/routing/routed_target.ts";
export type { BreakerOptions } from "./src/targets/routing/replica_set.ts";
export { RouteConfigError, routesFromArgs, routesFromFile } from "./src/targets/routing/route_config.ts";
