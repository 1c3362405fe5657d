/**
 * The batchspool Hono app: OpenAI's Files and Batches APIs under `/v1`, and
 * `/health`, `/openapi.json` and its `/docs` page. Web APIs only, so any runtime can serve it and any Hono app can
 * mount it.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { BatchEngine } from "../engine/engine.ts";
import type { UpstreamView } from "../engine/types.ts";
import { DEFAULT_FILE_LIMITS } from "../batch/files/file_service.ts";
import { consoleLogger, type Logger } from "../shared/logger.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { apiKeyAuth, type OwnerVariables } from "./access/auth.ts";
import { batchesRoutes } from "./batches_routes.ts";
import { anthropicErrorBody, errorReply } from "./error_response.ts";
import { filesRoutes } from "./files_routes.ts";
import { messageBatchesRoutes } from "./anthropic/message_batches_routes.ts";
import type { PrometheusMetrics } from "./operator/metrics.ts";
import { OPENAPI_DOCUMENT } from "./openapi.ts";
import { addDocsPage } from "./docs_page.ts";
import type { BatchEventsOptions } from "./batch_events.ts";
import { RequestError } from "./request_error.ts";
import { browserGuard, type BrowserGuardOptions } from "./access/browser_guard.ts";
import { addOperatorRoutes } from "./operator/operator_routes.ts";

/** Options for {@link createApp}. */
export interface AppOptions {
  /** The engine that serves files and batches (from `createBatchEngine`). */
  engine: BatchEngine;
  /** API keys; each is its own owner. None: every request is the owner `default`. */
  apiKeys?: readonly string[];
  /**
   * For a server without API keys: the hosts it answers to, and no state
   * changed from another site (see `browser_guard.ts`). Off when not given.
   */
  browserGuard?: BrowserGuardOptions;
  /** Largest upload in bytes (default 512 MB); should match the engine's file limit. */
  maxFileBytes?: number;
  /** Where unexpected errors are reported (default: the console). */
  logger?: Logger;
  /** An upload whose client sends nothing for this long is answered 408 (default 120 s). */
  idleTimeoutMs?: number;
  /**
   * The server's base URL as clients reach it (behind a proxy, say), for the
   * absolute URLs it gives out (a message batch's `results_url`); by default
   * each request's own.
   */
  publicUrl?: string;
  /** Where time comes from (injectable for tests). */
  clock?: Clock;
  /** How `GET /v1/batches/{id}/events` paces its stream (defaults: a look every 250 ms, a keep-alive every 5 s). */
  batchEvents?: BatchEventsOptions;
  /**
   * Serves them at `GET /metrics` (Prometheus text format, without API keys:
   * it names no tenant's data) and counts uploads (from `createPrometheusMetrics`).
   */
  metrics?: PrometheusMetrics;
  /**
   * Serves `GET /cluster`: every node on this storage, its work and last
   * heartbeat (without API keys, like `/metrics`: keep it private).
   */
  cluster?: { describe(): Promise<unknown> };
  /**
   * Whether `/metrics` and `/cluster` are served here (default true). A
   * server whose API is public serves them on a listener of its own instead
   * (`createAdminApp`).
   */
  operatorRoutes?: boolean;
}

/** Anthropic's Message Batches routes (wherever the app is mounted): their errors are in Anthropic's envelope. */
const ANTHROPIC_ROUTES = /\/v1\/messages\/batches(\/|$)/;

/** How long an upload may wait for its next bytes, by default. */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;

/**
 * Creates the HTTP app.
 *
 * @returns a Hono app whose `Variables` carry the request's `owner`.
 * @example
 * ```ts
 * const storage = await createFsStorage({ dir: "./data" });
 * const engine = createBatchEngine({ storage, target: createMockTarget() });
 * await engine.start();
 * const app = createApp({ engine });
 * Deno.serve(app.fetch); // or Bun.serve({ fetch: app.fetch }), or mount: parent.route("/", app)
 * ```
 */
export function createApp(options: AppOptions): Hono<{ Variables: OwnerVariables }> {
  const { engine } = options;
  const logger = options.logger ?? consoleLogger;
  const app = new Hono<{ Variables: OwnerVariables }>();

  /** The error reply in the envelope of the API the request was for (Anthropic's under `/v1/messages/`). */
  const replyWith = (c: Context, error: unknown) => {
    const reply = errorReply(error, logger);
    if (!ANTHROPIC_ROUTES.test(new URL(c.req.url).pathname)) return c.json(reply.body, reply.status, reply.headers);
    const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`;
    return c.json(anthropicErrorBody(reply, requestId), reply.status, { ...reply.headers, "request-id": requestId });
  };
  app.onError((error, c) => replyWith(c, error));
  app.notFound((c) =>
    replyWith(c, new RequestError("not_found", `Unknown request URL: ${c.req.method} ${new URL(c.req.url).pathname}.`))
  );

  if (options.browserGuard) app.use("*", browserGuard(options.browserGuard));
  app.get("/openapi.json", (c) => c.json(OPENAPI_DOCUMENT));
  addDocsPage(app);

  const node = { node_id: engine.nodeId };
  app.get("/health", (c) =>
    engine.ready
      ? c.json({ status: "ok", ...node, upstreams: upstreamHealth(engine.stats().upstreams) })
      : c.json({ status: "starting", ...node }, 503));
  if (options.operatorRoutes !== false) addOperatorRoutes(app, { metrics: options.metrics, cluster: options.cluster });

  const { metrics } = options;
  if (metrics) {
    app.use("/v1/files", async (c, next) => {
      await next();
      if (c.req.method === "POST") metrics.uploadFinished(c.res.status < 300 ? "stored" : "refused");
    });
  }

  app.use("/v1/*", async (_c, next) => {
    if (!engine.ready) throw new RequestError("not_ready", "The server is starting or stopping; try again shortly.");
    await next();
  });
  app.use("/v1/*", apiKeyAuth(options.apiKeys ?? []));
  app.route(
    "/v1/files",
    filesRoutes({
      files: engine.files,
      maxFileBytes: options.maxFileBytes ?? DEFAULT_FILE_LIMITS.maxFileBytes,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      clock: options.clock ?? systemClock,
      idempotency: engine.idempotency,
    }),
  );
  app.route("/v1/batches", batchesRoutes(engine, options.clock ?? systemClock, options.batchEvents));
  app.route(
    "/v1/messages/batches",
    messageBatchesRoutes(engine, {
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      clock: options.clock ?? systemClock,
      publicUrl: options.publicUrl,
    }),
  );
  return app;
}

/**
 * Each upstream's state for `/health`: its limit now and, with routes, how many
 * of its replicas are out. No URL: `/health` is public on the API port.
 */
function upstreamHealth(views: UpstreamView[]) {
  return views.map((view) => ({
    upstream: view.upstream,
    limit: view.limit,
    in_flight: view.in_flight,
    ...(view.replicas.length
      ? { replicas: view.replicas.length, replicas_out: view.replicas.filter((replica) => replica.breaker !== "closed").length }
      : {}),
  }));
}
