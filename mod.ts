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
export { DEFAULT_OWNER, ownerOfKey } from "./src/http/auth.ts";
export { type BatchEngine, type BatchEngineOptions, type BatchPage, createBatchEngine } from "./src/batch/engine.ts";
export { BatchError, type BatchErrorCode } from "./src/batch/errors.ts";
export { DEFAULT_ENDPOINTS, parseCompletionWindow } from "./src/batch/batch_params.ts";
export { DEFAULT_FILE_LIMITS, type FileLimits, type FileService } from "./src/batch/file_service.ts";
export { consoleLogger, type Logger, silentLogger } from "./src/shared/logger.ts";
export type * from "./src/batch/objects.ts";
export { createHttpTarget, createInProcessTarget, type FetchHandler, type HttpTargetOptions } from "./src/batch/targets/fetch_target.ts";
export { createMockTarget, type MockTargetOptions } from "./src/batch/targets/mock_target.ts";
export { type Target, TargetError, type TargetRequest, type TargetResponse } from "./src/batch/targets/types.ts";
