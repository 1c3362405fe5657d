/**
 * Targets that answer over HTTP semantics: an upstream server (reached through
 * an HTTP/1.1 client or `fetch`, see `http_transport.ts`), or a `fetch`-shaped handler
 * in the same process (a Hono app's `fetch`).
 *
 * @module
 */
import { type Clock, systemClock } from "../../shared/clock.ts";
import { retryAfterMs } from "../retry.ts";
import { checkHeaders } from "./http1_post.ts";
import { choosePost, type PostResponse, readPostResponse } from "./http_transport.ts";
import { RequestDeadlines } from "./request_deadlines.ts";
import { ResponseTooLargeError, TargetConfigError } from "./transport_errors.ts";
import { type Target, TargetError, type TargetRequest, type TargetResponse } from "./types.ts";

/** Anything that answers a `Request` with a `Response`, such as `app.fetch` of a Hono app. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Options for {@link createHttpTarget}. */
export interface HttpTargetOptions {
  /** OpenAI-style base URL including `/v1`, e.g. `http://127.0.0.1:8000/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when set. */
  apiKey?: string;
  /** Per-request timeout in ms (default 10 minutes). */
  timeoutMs?: number;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Longest answer accepted, in bytes (default 64 MiB): a longer one fails its line as `response_too_large`. */
  maxResponseBytes?: number;
  /** Where request deadlines are timed (injectable for tests). */
  clock?: Clock;
}

/** The default cap on an answer: far above any real completion, far below what would exhaust memory. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * The {@link TargetError} for what a transport threw while a request was
 * under way; `describe` says where the request went (for a network failure).
 */
function targetErrorOf(error: unknown, request: TargetRequest, deadline: { timedOut(): boolean }, timeoutMs: number, describe: string): TargetError {
  if (request.signal.aborted) return new TargetError("aborted", "the request was aborted", { cause: error });
  if (error instanceof ResponseTooLargeError) return new TargetError("response_too_large", error.message, { cause: error });
  if (error instanceof TargetConfigError) return new TargetError("misconfigured", error.message, { cause: error });
  if (deadline.timedOut()) return new TargetError("timeout", `no response within ${timeoutMs} ms`, { cause: error });
  return new TargetError("connection_error", `${describe}: ${(error as Error).message}`, { cause: error });
}

const REQUEST_ID_HEADERS = ["x-request-id", "request-id", "x-amzn-requestid"];

/** Turns an answer into a {@link TargetResponse}. */
function targetResponse({ status, headers, text }: PostResponse): TargetResponse {
  let body: Record<string, unknown>;
  let json = false;
  try {
    const parsed = JSON.parse(text);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
      body = parsed;
      json = true;
    } else {
      body = { value: parsed };
    }
  } catch {
    body = { error: { message: text.slice(0, 4096), type: "invalid_response" } };
  }
  let requestId: string | null = null;
  for (const name of REQUEST_ID_HEADERS) requestId ??= headers.get(name);
  const ok = status >= 200 && status < 300;
  return {
    status,
    body,
    bodyJson: json ? text : undefined,
    requestId,
    // Only a failed request is retried, so only a failure's Retry-After matters.
    retryAfterMs: ok ? null : retryAfterMs(headers),
    json,
  };
}

/** The upstream URL of each line URL (`/v1/chat/completions` → `<baseUrl>/chat/completions`), remembered: there are a handful. */
function upstreamUrls(baseUrl: string): (lineUrl: string) => string {
  const base = baseUrl.replace(/\/+$/, "");
  const known = new Map<string, string>();
  return (lineUrl) => {
    let url = known.get(lineUrl);
    if (url === undefined) {
      url = base + lineUrl.replace(/^\/v1(?=\/)/, "");
      known.set(lineUrl, url);
    }
    return url;
  };
}

/**
 * A target that POSTs each line to an OpenAI-compatible server: through an
 * HTTP/1.1 client on kept-alive connections for an `http:` URL (when no HTTP
 * proxy is configured), through `fetch` otherwise.
 *
 * @throws {TargetError} `misconfigured` at once for a base URL that is not
 *   http(s) or a header no request could carry.
 * @example
 * ```ts
 * const target = createHttpTarget({ baseUrl: "http://127.0.0.1:11434/v1" }); // Ollama
 * ```
 */
export function createHttpTarget(options: HttpTargetOptions): Target {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  try {
    const base = new URL(options.baseUrl);
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new TargetConfigError(`${base.protocol} is not http or https`);
    checkHeaders(headers);
  } catch (error) {
    throw new TargetError("misconfigured", `cannot send requests to ${JSON.stringify(options.baseUrl)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const deadlines = new RequestDeadlines(timeoutMs, options.clock ?? systemClock);
  const urlOf = upstreamUrls(options.baseUrl);
  const post = choosePost(options.baseUrl, { maxResponseBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES });
  return {
    description: options.baseUrl,
    async send(request: TargetRequest): Promise<TargetResponse> {
      const deadline = deadlines.start(request.signal);
      try {
        return targetResponse(await post(urlOf(request.url), headers, request.bodyText, deadline));
      } catch (error) {
        throw targetErrorOf(error, request, deadline, timeoutMs, `could not reach ${options.baseUrl}`);
      } finally {
        deadline.done();
      }
    },
  };
}

/**
 * A target that hands each line to a handler in this process: no network hop.
 *
 * @example
 * ```ts
 * const model = new Hono().post("/v1/chat/completions", (c) => c.json({ choices: [] }));
 * const target = createInProcessTarget(model.fetch);
 * ```
 */
export function createInProcessTarget(
  handler: FetchHandler,
  options: { timeoutMs?: number; maxResponseBytes?: number; clock?: Clock } = {},
): Target {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const limits = { maxResponseBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES };
  const deadlines = new RequestDeadlines(timeoutMs, options.clock ?? systemClock);
  return {
    description: "in-process",
    async send(request: TargetRequest): Promise<TargetResponse> {
      const deadline = deadlines.start(request.signal);
      try {
        const response = await handler(
          new Request(`http://in-process${request.url}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: request.bodyText,
            signal: deadline.signal,
          }),
        );
        return targetResponse(await readPostResponse(response, limits));
      } catch (error) {
        throw targetErrorOf(error, request, deadline, timeoutMs, "the in-process handler failed");
      } finally {
        deadline.done();
      }
    },
  };
}
