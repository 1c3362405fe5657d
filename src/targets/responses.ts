/**
 * What the HTTP-shaped targets share: turning an answer into a
 * {@link TargetResponse}, and a transport's failure into a {@link TargetError}.
 *
 * @module
 */
import type { PostResponse } from "./http/transport.ts";
import { ResponseTooLargeError, TargetConfigError } from "./http/transport_errors.ts";
import { retryAfterMs } from "./retry_after.ts";
import { TargetError, type TargetRequest, type TargetResponse } from "./types.ts";

/** The default cap on an answer: far above any real completion, far below what would exhaust memory. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/**
 * The {@link TargetError} for what a transport threw while a request was
 * under way; `describe` says where the request went (for a network failure).
 */
export function targetErrorOf(error: unknown, request: TargetRequest, deadline: { timedOut(): boolean }, timeoutMs: number, describe: string): TargetError {
  if (request.signal.aborted) return new TargetError("aborted", "the request was aborted", { cause: error });
  if (error instanceof ResponseTooLargeError) return new TargetError("response_too_large", error.message, { cause: error });
  if (error instanceof TargetConfigError) return new TargetError("misconfigured", error.message, { cause: error });
  if (deadline.timedOut()) return new TargetError("timeout", `no response within ${timeoutMs} ms`, { cause: error });
  return new TargetError("connection_error", `${describe}: ${(error as Error).message}`, { cause: error });
}

const REQUEST_ID_HEADERS = ["x-request-id", "request-id", "x-amzn-requestid"];

/** Turns an answer into a {@link TargetResponse}. */
export function targetResponse({ status, headers, text }: PostResponse): TargetResponse {
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
