/**
 * How the HTTP target puts one JSON request on the wire and reads the answer:
 * through `fetch`, or through the HTTP/1.1 client of `http1_post.ts`.
 *
 * `fetch` is the portable choice, but its cost per request differs by an order
 * of magnitude between runtimes, and on every runtime it costs more than a
 * plain HTTP/1.1 exchange on a kept-alive socket (figures in `http1_post.ts`).
 * So plain-HTTP upstreams — the usual self-hosted engine on the same host or
 * network — are reached through the HTTP/1.1 client, and everything else
 * (`https:`, a configured proxy) through `fetch` (see {@link choosePost}).
 *
 * @module
 */
import process from "node:process";
import { http1Post } from "./http1_client.ts";
import type { RequestAbort } from "../request_deadlines.ts";
import { ResponseTooLargeError } from "./transport_errors.ts";

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

/** What the transports accept. */
export interface TransportLimits {
  /** Longest answer body (decoded) read; a longer one fails with {@link ResponseTooLargeError}. Default: no limit. */
  maxResponseBytes?: number;
}

/**
 * Reads a `fetch` response whole, as a {@link PostResponse}: at most
 * `maxResponseBytes` of its body, else it is cancelled and this throws
 * {@link ResponseTooLargeError}.
 *
 * @example
 * ```ts
 * const { status, text } = await readPostResponse(await app.fetch(request), { maxResponseBytes: 1 << 26 });
 * ```
 */
export async function readPostResponse(response: Response, limits: TransportLimits = {}): Promise<PostResponse> {
  const max = limits.maxResponseBytes ?? Infinity;
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await response.body?.cancel().catch(() => {});
    throw new ResponseTooLargeError(max);
  }
  if (!response.body) return { status: response.status, headers: response.headers, text: "" };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  for (let r = await reader.read(); !r.done; r = await reader.read()) {
    bytes += r.value.length;
    if (bytes > max) {
      await reader.cancel().catch(() => {});
      throw new ResponseTooLargeError(max);
    }
    text += decoder.decode(r.value, { stream: true });
  }
  text += decoder.decode();
  return { status: response.status, headers: response.headers, text };
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
export function fetchPost(limits: TransportLimits = {}): PostFunction {
  return async (url, headers, body, abort) =>
    readPostResponse(await fetch(url, { method: "POST", headers, body, signal: abort.signal }), limits);
}

/** Whether an HTTP proxy is configured (`fetch` honours it; the HTTP/1.1 client does not). */
function httpProxyConfigured(): boolean {
  return Boolean(process.env.HTTP_PROXY || process.env.http_proxy);
}

/**
 * The POST function for requests to `baseUrl`: the HTTP/1.1 client
 * (`http1_post.ts`) for an `http:` URL when no proxy is configured, `fetch`
 * otherwise; `transport: "fetch"` asks for `fetch` whatever the URL (for
 * measuring one against the other).
 *
 * @example
 * ```ts
 * const post = choosePost("http://127.0.0.1:8000/v1"); // the HTTP/1.1 client
 * ```
 */
export function choosePost(baseUrl: string, limits: TransportLimits = {}, transport?: "http1" | "fetch"): PostFunction {
  if (transport === "fetch") return fetchPost(limits);
  const plainHttp = new URL(baseUrl).protocol === "http:";
  return plainHttp && !httpProxyConfigured() ? http1Post(limits) : fetchPost(limits);
}
