/**
 * The target that sends each line to an OpenAI-compatible server over HTTP
 * (through the HTTP/1.1 client or `fetch`, see `http/transport.ts`).
 *
 * @module
 */
import { type Clock, systemClock } from "../shared/clock.ts";
import { checkHeaders } from "./http/http1_client.ts";
import { choosePost } from "./http/transport.ts";
import { TargetConfigError } from "./http/transport_errors.ts";
import { RequestDeadlines } from "./request_deadlines.ts";
import { DEFAULT_MAX_RESPONSE_BYTES, targetErrorOf, targetResponse } from "./responses.ts";
import { type Target, TargetError, type TargetRequest, type TargetResponse } from "./types.ts";
import { redactUrl } from "../shared/redact.ts";

export { DEFAULT_MAX_RESPONSE_BYTES };

/** The Messages API version sent with `/v1/messages` requests (a request's own header would need a line per header). */
export const ANTHROPIC_VERSION = "2023-06-01";

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
  /**
   * `fetch` sends through the runtime's `fetch` even where the HTTP/1.1 client
   * would be used (an `http:` URL without a proxy); for measuring the two.
   */
  transport?: "http1" | "fetch";
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
    throw new TargetError("misconfigured", `cannot send requests to ${JSON.stringify(redactUrl(options.baseUrl))}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // Servers of Anthropic's Messages API (vLLM, llama.cpp, Ollama, TensorRT-LLM, Anthropic's own) read its version header.
  const messagesHeaders = { "anthropic-version": ANTHROPIC_VERSION, ...headers };
  const headersOf = (lineUrl: string) => (lineUrl === "/v1/messages" ? messagesHeaders : headers);
  const deadlines = new RequestDeadlines(timeoutMs, options.clock ?? systemClock);
  const urlOf = upstreamUrls(options.baseUrl);
  const post = choosePost(options.baseUrl, { maxResponseBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES }, options.transport);
  return {
    // Said in logs and in tenants' error records: without user info or query.
    description: redactUrl(options.baseUrl),
    async send(request: TargetRequest): Promise<TargetResponse> {
      const deadline = deadlines.start(request.signal);
      try {
        return targetResponse(await post(urlOf(request.url), headersOf(request.url), request.bodyText, deadline));
      } catch (error) {
        throw targetErrorOf(error, request, deadline, timeoutMs, `could not reach ${redactUrl(options.baseUrl)}`);
      } finally {
        deadline.done();
      }
    },
  };
}
