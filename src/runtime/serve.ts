/**
 * Serving a `fetch` handler on Deno, Bun or Node, each with its own server.
 * The only place that touches runtime-specific server APIs.
 *
 * @module
 */
import { currentRuntime } from "./detect.ts";

/** What to serve and where. */
export interface ServeOptions {
  fetch: (request: Request) => Response | Promise<Response>;
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** Largest request body accepted by the runtime's server (Bun enforces one). */
  maxRequestBodySize: number;
  /**
   * A connection on which nothing moves for this long is closed, where the
   * runtime's server offers it: Node (socket timeout; also 60 s to send the
   * request head), Bun (`idleTimeout`, at most 255 s). Deno's server has no
   * such setting. No runtime limits a request's whole duration: a large upload
   * over a slow link takes as long as it takes. Default 120 s.
   */
  idleTimeoutMs?: number;
}

/** Node's time for a client to send a request's head (its default). */
const HEADERS_TIMEOUT_MS = 60_000;
/** Bun's largest `idleTimeout`, in seconds. */
const BUN_MAX_IDLE_SECONDS = 255;
const DEFAULT_IDLE_TIMEOUT_MS = 120_000;

/** Bun's `idleTimeout` (whole seconds, 1 to 255) for an idle timeout in ms. */
export function bunIdleTimeout(idleTimeoutMs: number): number {
  return Math.max(1, Math.min(BUN_MAX_IDLE_SECONDS, Math.ceil(idleTimeoutMs / 1000)));
}

/** A running server. */
export interface RunningServer {
  /** The port actually bound. */
  port: number;
  /** Stops accepting connections and closes the server. */
  close(): Promise<void>;
}

interface DenoServer {
  addr: { port: number };
  shutdown(): Promise<void>;
}
interface DenoLike {
  serve(
    options: { hostname: string; port: number; onListen?: (addr: { port: number }) => void },
    handler: ServeOptions["fetch"],
  ): DenoServer;
}
interface BunServer {
  port: number;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}
interface BunLike {
  serve(options: {
    hostname: string;
    port: number;
    fetch: ServeOptions["fetch"];
    maxRequestBodySize: number;
    idleTimeout: number;
  }): BunServer;
}

/**
 * Serves `options.fetch` with the current runtime's HTTP server.
 *
 * @example
 * ```ts
 * const server = await serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0, maxRequestBodySize: 2 ** 30 });
 * console.log(server.port);
 * await server.close();
 * ```
 */
export async function serve(options: ServeOptions): Promise<RunningServer> {
  switch (currentRuntime()) {
    case "deno": {
      const deno = (globalThis as unknown as { Deno: DenoLike }).Deno;
      const server = deno.serve({ hostname: options.hostname, port: options.port, onListen: () => {} }, options.fetch);
      return { port: server.addr.port, close: () => server.shutdown() };
    }
    case "bun": {
      const bun = (globalThis as unknown as { Bun: BunLike }).Bun;
      const server = bun.serve({
        hostname: options.hostname,
        port: options.port,
        fetch: options.fetch,
        maxRequestBodySize: options.maxRequestBodySize,
        idleTimeout: bunIdleTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS),
      });
      return { port: server.port, close: async () => void (await server.stop(true)) };
    }
    case "node": {
      const { serve: nodeServe } = await import("@hono/node-server");
      return await new Promise<RunningServer>((resolve, reject) => {
        const server = nodeServe(
          { fetch: options.fetch, hostname: options.hostname, port: options.port },
          (info) =>
            resolve({
              port: info.port,
              close: () =>
                new Promise<void>((done) => {
                  server.close(() => done());
                  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
                }),
            }),
        );
        server.once("error", reject);
        // Node's default ends any request after 300 s, which a large upload over a slow link outlasts:
        // a stalled connection is caught by the idle timeout instead.
        const http = server as unknown as {
          requestTimeout: number;
          headersTimeout: number;
          setTimeout(ms: number): void;
        };
        http.requestTimeout = 0;
        http.headersTimeout = HEADERS_TIMEOUT_MS;
        http.setTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
      });
    }
  }
}
