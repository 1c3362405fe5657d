/**
 * `batchspool serve`: the storage, engine, webhook deliverer and HTTP server a
 * configuration describes (see `serve_config.ts`), start-up and graceful shutdown.
 *
 * @module
 */
import process from "node:process";
import { type BatchEngine, createBatchEngine } from "./engine/engine.ts";
import { createPrometheusMetrics, type PrometheusMetrics } from "./http/operator/metrics.ts";
import { DEFAULT_FILE_LIMITS } from "./batch/files/file_service.ts";
import { DEFAULT_ENDPOINTS } from "./batch/model/batch_params.ts";
import { consoleLogger } from "./shared/logger.ts";
import { createHttpTarget } from "./targets/http_target.ts";
import { createMockTarget } from "./targets/mock.ts";
import { type Target, TargetError } from "./targets/types.ts";
import { createApp } from "./http/app.ts";
import { serve } from "./runtime/serve.ts";
import { createFsStorage } from "./storage/fs/fs_storage.ts";
import { createPostgresStorage } from "./storage/postgres/postgres_storage.ts";
import type { Storage } from "./storage/types.ts";
import { createWebhookDeliverer, type WebhookDeliverer } from "./webhooks/deliverer.ts";
import { withMessagesMode } from "./targets/messages/messages_target.ts";
import { ConfigError, isLoopback, type ServeConfig } from "./serve_config.ts";
import { createAdminApp } from "./http/operator/operator_routes.ts";
import { redactUrl } from "./shared/redact.ts";
import { createRoutedTarget, type UpstreamRoute } from "./targets/routing/routed_target.ts";
import { MOCK_URL } from "./targets/routing/route_config.ts";

export { ConfigError, readServeConfig, SERVE_USAGE, type ServeConfig } from "./serve_config.ts";

/**
 * Builds the target a configuration names: one upstream's, or one that routes
 * by model over several (each replica of each its own target).
 *
 * @throws {ConfigError} when no request could be sent as configured (an upstream key that is not a valid header).
 */
export function targetFor(config: ServeConfig): Target {
  const [only] = config.routes;
  try {
    if (config.routes.length === 1 && only.model === undefined && only.urls.length === 1 && !hasLimits(only)) {
      return replicaTarget(config, only.urls[0], only);
    }
    return createRoutedTarget({ routes: config.routes, targetOf: (url, route) => replicaTarget(config, url, route) });
  } catch (error) {
    if (error instanceof TargetError) throw new ConfigError(`--upstream: ${error.message}`);
    throw error;
  }
}

/** Whether a route sets limits of its own (then the engine must know of it as an upstream). */
function hasLimits(route: UpstreamRoute): boolean {
  return route.concurrency !== undefined || route.requestsPerMinute !== undefined || route.tokensPerMinute !== undefined ||
    route.adaptive !== undefined;
}

/** The target of one upstream URL of a route. */
function replicaTarget(config: ServeConfig, url: string, route: UpstreamRoute): Target {
  if (url === MOCK_URL) return createMockTarget({ latencyMs: config.mockLatencyMs });
  const target = createHttpTarget({
    baseUrl: url,
    apiKey: route.apiKey ?? config.upstreamKey,
    timeoutMs: route.timeoutMs ?? config.requestTimeoutMs,
    maxResponseBytes: config.maxResponseBytes,
  });
  return withMessagesMode(target, config.messagesUpstream);
}

/**
 * Builds the engine a configuration describes, on `storage`: a node of the
 * work that storage holds (the only one on a data directory; one of the
 * schema's on a database). Call `start()` on it.
 */
export function engineFor(
  config: ServeConfig,
  storage: Storage,
  target: Target = targetFor(config),
  metrics?: PrometheusMetrics,
  deliverer?: WebhookDeliverer,
): BatchEngine {
  const engine = createBatchEngine({
    storage,
    target,
    concurrency: config.concurrency,
    requestsPerMinute: config.requestsPerMinute,
    ownerWeights: config.ownerWeights,
    modelBudgets: config.modelBudgets,
    prefixGrouping: config.prefixGrouping,
    endpoints: [...DEFAULT_ENDPOINTS, ...config.endpoints],
    tokensPerMinute: config.tokensPerMinute,
    maxRetries: config.maxRetries,
    scanUploadsOffThread: config.scanWorker,
    logger: consoleLogger,
    observer: metrics?.observer,
    webhooks: config.webhooks
      ? { wants: (owner: string) => config.webhooks!.has(owner), recorded: () => deliverer?.kick() }
      : undefined,
    checkpoints: { intervalMs: config.checkpointIntervalMs },
    nodeId: config.nodeId,
    leaseSeconds: config.leaseSeconds,
    sliceLimits: { maxLines: config.sliceLines },
  });
  metrics?.attach(engine);
  return engine;
}

/**
 * Runs the server until SIGINT or SIGTERM. Resolves when it has shut down.
 */
export async function runServe(config: ServeConfig): Promise<void> {
  let shutDown: (reason: string, exitCode: number) => void = () => {};
  const target = targetFor(config);
  const storage = await openStorage(config, (error) => shutDown(error.message, 1));
  const metrics = createPrometheusMetrics();
  const deliverer = delivererFor(config, storage);
  const engine = engineFor(config, storage, target, metrics, deliverer);
  const cluster = { describe: () => engine.describeCluster() };
  // Routes without keys that show every tenant's batch ids stay off a public API port.
  const operatorBesideApi = !config.admin && isLoopback(config.host);
  const app = createApp({
    engine,
    metrics,
    cluster,
    operatorRoutes: operatorBesideApi,
    batchEvents: { maxStreamsPerKey: config.maxEventStreams },
    apiKeys: config.apiKeys,
    browserGuard: config.apiKeys.length ? undefined : { allowedHosts: keylessHosts(config) },
    maxFileBytes: DEFAULT_FILE_LIMITS.maxFileBytes,
    idleTimeoutMs: config.idleTimeoutMs,
    publicUrl: config.publicUrl,
  });
  const server = await serve({
    fetch: app.fetch,
    hostname: config.host,
    port: config.port,
    maxRequestBodySize: DEFAULT_FILE_LIMITS.maxFileBytes + 1024 * 1024,
    idleTimeoutMs: config.idleTimeoutMs,
  });
  console.log(`batchspool listening on http://${shown(config.host)}:${server.port}`);
  const admin = config.admin
    ? await serve({
      fetch: createAdminApp({ metrics, cluster, ready: () => engine.ready }).fetch,
      hostname: config.admin.host,
      port: config.admin.port,
      maxRequestBodySize: 1024,
      idleTimeoutMs: config.idleTimeoutMs,
    })
    : null;
  if (admin) console.log(`admin (/metrics, /cluster) listening on http://${shown(config.admin!.host)}:${admin.port}`);
  else if (!operatorBesideApi) console.log("admin: /metrics and /cluster are not served on a public address; give --admin-port");
  console.log(`data: ${describeStorage(config)}`);
  console.log(`target: ${redactUrl(target.description)}`);
  console.log(
    `auth: ${
      config.apiKeys.length
        ? `${config.apiKeys.length} API key(s), each its own owner`
        : config.noAuth
        ? "none (--no-auth)"
        : "none (loopback only)"
    }`,
  );
  if (config.webhooks) console.log(`webhooks: ${config.webhooks.size} endpoint(s)`);
  await engine.start();
  deliverer?.start();
  console.log("ready");

  await new Promise<void>((resolve) => {
    let stopping = false;
    shutDown = async (reason, exitCode) => {
      // A second signal while shutting down is ignored: the first one's shutdown finishes.
      if (stopping) return;
      stopping = true;
      console.log(`${reason}: shutting down`);
      await engine.close();
      await deliverer?.close();
      await server.close();
      await admin?.close();
      await storage.close();
      // Listeners keep Deno's event loop alive: remove them so the process can exit.
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      console.log("stopped");
      if (exitCode) process.exitCode = exitCode;
      resolve();
    };
    const onSignal = (signal: string) => shutDown(signal, 0);
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

/** The webhook deliverer of a configuration with endpoints (start it after the engine). */
export function delivererFor(config: ServeConfig, storage: Storage): WebhookDeliverer | undefined {
  const endpoints = config.webhooks;
  if (!endpoints) return undefined;
  return createWebhookDeliverer({ storage, endpointFor: (owner) => endpoints.get(owner) ?? null, logger: consoleLogger });
}

/**
 * Opens the configured storage. `onLost` runs if another process takes the
 * data directory over: this one must stop at once (the server shuts down).
 */
export function openStorage(config: ServeConfig, onLost: (error: Error) => void): Promise<Storage> {
  if (config.databaseUrl) {
    // The schema is shared by the cluster's nodes: none takes it for itself.
    return createPostgresStorage({
      url: config.databaseUrl,
      schema: config.databaseSchema,
      idleInTransactionTimeoutMs: config.leaseSeconds * 1000,
      logger: consoleLogger,
    });
  }
  return createFsStorage({
    dir: config.dataDir,
    lock: { staleAfterMs: config.lockStaleAfterMs, heartbeatMs: Math.min(2_000, config.lockStaleAfterMs / 5) },
    logger: consoleLogger,
    onLockLost: onLost,
  });
}

/** Where the state lives, for the start-up banner (a URL's password hidden). */
function describeStorage(config: ServeConfig): string {
  if (!config.databaseUrl) return `fs storage in ${config.dataDir}`;
  const url = new URL(config.databaseUrl);
  if (url.password) url.password = "***";
  return `postgres storage, schema ${config.databaseSchema} of ${url} (a cluster node)`;
}

/** The hosts a server without keys answers to: `--allowed-hosts`, and its address unless it is a wildcard. */
function keylessHosts(config: ServeConfig): string[] | "*" {
  if (config.allowedHosts === "*") return "*";
  const wildcard = ["0.0.0.0", "::", "[::]"].includes(config.host);
  return wildcard ? config.allowedHosts : [config.host, ...config.allowedHosts];
}

/** A host as it goes in a URL. */
function shown(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}
