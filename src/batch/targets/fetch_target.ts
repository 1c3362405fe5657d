/**
 * Targets that answer over HTTP semantics: an upstream server (reached through
 * an HTTP/1.1 client or `fetch`, see `http_transport.ts`), or a `fetch`-shaped handler
 * in the same process (a Hono app's `fetch`).
 *
 * @module
 */
import { retryAfterMs } from "../retry.ts";
import { choosePost, type PostResponse, readPostResponse } from "./http_transport.ts";
import { RequestDeadlines } from "./request_deadlines.ts";
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
 * @example
 * ```ts
 * const target = createHttpTarget({ baseUrl: "http://127.0.0.1:11434/v1" }); // Ollama
 * ```
 */
export function createHttpTarget(options: HttpTargetOptions): Target {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  const deadlines = new RequestDeadlines(timeoutMs);
  const urlOf = upstreamUrls(options.baseUrl);
  const post = choosePost(options.baseUrl);
  return {
    description: options.baseUrl,
    async send(request: TargetRequest): Promise<TargetResponse> {
      const deadline = deadlines.start(request.signal);
      try {
        return targetResponse(await post(urlOf(request.url), headers, request.bodyText, deadline));
      } catch (error) {
        if (request.signal.aborted) throw new TargetError("aborted", "the request was aborted", { cause: error });
        if (deadline.timedOut()) {
          throw new TargetError("timeout", `no response within ${timeoutMs} ms`, { cause: error });
        }
        throw new TargetError("connection_error", `could not reach ${options.baseUrl}: ${(error as Error).message}`, {
          cause: error,
        });
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
export function createInProcessTarget(handler: FetchHandler, options: { timeoutMs?: number } = {}): Target {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const deadlines = new RequestDeadlines(timeoutMs);
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
        return targetResponse(await readPostResponse(response));
      } catch (error) {
        if (request.signal.aborted) throw new TargetError("aborted", "the request was aborted", { cause: error });
        if (deadline.timedOut()) throw new TargetError("timeout", `no response within ${timeoutMs} ms`, { cause: error });
        throw new TargetError("connection_error", `the in-process handler failed: ${(error as Error).message}`, {
          cause: error,
        });
      } finally {
        deadline.done();
      }
    },
  };
}
