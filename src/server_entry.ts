/**
 * A ready-to-serve module: its default export is `{ fetch, port }`, configured
 * from the environment (the same `BATCHSPOOL_*` variables as `batchspool serve`),
 * so hosts that serve a module's default export can run batchspool directly:
 *
 * ```sh
 * BATCHSPOOL_UPSTREAM=mock deno serve -A --port 8787 src/server_entry.ts
 * BATCHSPOOL_UPSTREAM=mock bun src/server_entry.ts
 * ```
 *
 * Importing it opens the data directory and starts the engine; SIGINT and
 * SIGTERM close both before the process exits.
 *
 * @module
 */
import process from "node:process";
import { consoleLogger } from "./shared/logger.ts";
import { createApp } from "./http/app.ts";
import { createPrometheusMetrics } from "./http/operator/metrics.ts";
import { bunIdleTimeout } from "./runtime/serve.ts";
import { delivererFor, engineFor, openStorage, readServeConfig, targetFor } from "./serve_command.ts";

const config = readServeConfig([], process.env);
const target = targetFor(config);
const storage = await openStorage(config, () => void shutdown(1));
const metrics = createPrometheusMetrics();
const deliverer = delivererFor(config, storage);
const engine = engineFor(config, storage, target, metrics, deliverer);
const app = createApp({ engine, apiKeys: config.apiKeys, idleTimeoutMs: config.idleTimeoutMs, metrics, publicUrl: config.publicUrl });
engine.start().then(() => deliverer?.start()).catch((error) => {
  consoleLogger.error(`start-up failed: ${(error as Error).message}`);
  process.exit(1);
});

async function shutdown(exitCode = 0) {
  await engine.close();
  await deliverer?.close();
  await storage.close();
  process.exit(exitCode);
}
process.once("SIGINT", () => shutdown());
process.once("SIGTERM", () => shutdown());

/** The handler and port for `deno serve` and `bun` (with Bun's idle timeout: its default of 10 s would cut a paused upload). */
const server: { fetch: (request: Request) => Response | Promise<Response>; port: number; idleTimeout: number } = {
  fetch: app.fetch,
  port: config.port,
  idleTimeout: bunIdleTimeout(config.idleTimeoutMs),
};
export default server;
