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
        idleTimeout: 255,
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
      });
    }
  }
}
