/**
 * How the HTTP target puts one JSON request on the wire and reads the answer:
 * through `fetch`, or through `node:http` with keep-alive connections.
 *
 * `fetch` is the portable choice, but its cost per request differs by an order
 * of magnitude between runtimes. Measured on the project's 2-core machine,
 * 32 requests in flight to a local upstream that answers at once (CPU of the
 * calling thread per request): Node 20's fetch (undici) 310–350 µs, its
 * `node:http` 73–76 µs; Deno's fetch 43–59 µs, its `node:http` 35–43 µs;
 * Bun's fetch 12–15 µs on the main thread plus its HTTP client thread, and its
 * `node:http` no faster. So on Node, plain-HTTP upstreams — the usual
 * self-hosted engine on the same host or network — are reached through
 * `node:http`, and everything else through `fetch` (see {@link choosePost}).
 * Deno keeps `fetch`: its `node:http` saved a batch only ~5 %, and it sent one
 * request more than asked after an aborted one.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { Agent, type IncomingHttpHeaders, request as httpRequest } from "node:http";
import process from "node:process";
import { currentRuntime } from "../../runtime/detect.ts";
import type { RequestAbort } from "./request_deadlines.ts";

/** Response headers, looked up by lower-case name (a `Headers` is one). */
export interface HeaderLookup {
  get(name: string): string | null;
}

/** An answer, read whole. */
export interface PostResponse {
  status: number;
  headers: HeaderLookup;
  /** The body decoded as UTF-8 (invalid bytes become U+FFFD, as `Response.text()` does). */
  text: string;
}

/** Sends one POST and reads the whole answer; rejects when no complete answer came or `abort` fired. */
export type PostFunction = (
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  abort: RequestAbort,
) => Promise<PostResponse>;

/**
 * Reads a `fetch` response whole, as a {@link PostResponse}.
 *
 * @example
 * ```ts
 * const { status, text } = await readPostResponse(await app.fetch(request));
 * ```
 */
export async function readPostResponse(response: Response): Promise<PostResponse> {
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/**
 * POSTs through the global `fetch`.
 *
 * @example
 * ```ts
 * const post = fetchPost();
 * const deadline = new RequestDeadlines(60_000).start(signal);
 * const { status, text } = await post("https://api.example.com/v1/chat/completions", headers, body, deadline);
 * ```
 */
export function fetchPost(): PostFunction {
  return async (url, headers, body, abort) =>
    readPostResponse(await fetch(url, { method: "POST", headers, body, signal: abort.signal }));
}

class NodeHeaders implements HeaderLookup {
  constructor(private readonly headers: IncomingHttpHeaders) {}
  get(name: string): string | null {
    const value = this.headers[name];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(", ") : value;
  }
}

interface Endpoint {
  hostname: string;
  port: string;
  path: string;
}

/**
 * POSTs to `http:` URLs through `node:http`, keeping connections open between
 * requests (one per request in flight; idle ones are reused, most recent first).
 * The body's `content-length` is set, so nothing is sent chunked.
 *
 * @example
 * ```ts
 * const post = nodeHttpPost();
 * const deadline = new RequestDeadlines(60_000).start(signal);
 * const { status, text } = await post("http://127.0.0.1:8000/v1/chat/completions", headers, body, deadline);
 * ```
 */
export function nodeHttpPost(): PostFunction {
  const agent = new Agent({ keepAlive: true, scheduling: "lifo" });
  const endpoints = new Map<string, Endpoint>();
  const endpointOf = (url: string): Endpoint => {
    let endpoint = endpoints.get(url);
    if (!endpoint) {
      const parsed = new URL(url);
      if (parsed.protocol !== "http:") throw new TypeError(`node:http cannot reach ${parsed.protocol} URLs`);
      endpoint = { hostname: parsed.hostname.replace(/^\[|\]$/g, ""), port: parsed.port, path: parsed.pathname + parsed.search };
      endpoints.set(url, endpoint);
    }
    return endpoint;
  };
  return (url, headers, body, abort) =>
    new Promise<PostResponse>((resolve, reject) => {
      const { hostname, port, path } = endpointOf(url);
      const request = httpRequest(
        {
          agent,
          hostname,
          port,
          path,
          method: "POST",
          headers: { ...headers, "content-length": Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              headers: new NodeHeaders(response.headers),
              text: (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString("utf8"),
            }));
          response.on("error", reject);
          // A connection that closes before the body's end rejects (a no-op once resolved).
          response.on("close", () => {
            if (!response.complete) reject(new Error("the connection closed before the response ended"));
          });
        },
      );
      request.on("error", reject);
      // A callback, not a signal: no AbortController or listener per request (see request_deadlines.ts).
      abort.onAbort((reason) => {
        const error = reason instanceof Error ? reason : new Error(String(reason));
        // Rejected here too: Deno's `node:http` emits no error for a request destroyed while it waits for an answer.
        reject(error);
        request.destroy(error);
      });
      request.end(body);
    });
}

/** Whether an HTTP proxy is configured (Node's `fetch` honours it with `NODE_USE_ENV_PROXY`; `node:http` never). */
function httpProxyConfigured(): boolean {
  return Boolean(process.env.HTTP_PROXY || process.env.http_proxy);
}

/**
 * The POST function for requests to `baseUrl`: `node:http` for an `http:` URL
 * on Node when no proxy is configured, `fetch` otherwise.
 *
 * @example
 * ```ts
 * const post = choosePost("http://127.0.0.1:8000/v1"); // node:http on Node
 * ```
 */
export function choosePost(baseUrl: string): PostFunction {
  const plainHttp = new URL(baseUrl).protocol === "http:";
  return plainHttp && currentRuntime() === "node" && !httpProxyConfigured() ? nodeHttpPost() : fetchPost();
}
