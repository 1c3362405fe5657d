/**
 * The one place where an error becomes an HTTP status and an OpenAI-shaped
 * body: `{"error": {"message", "type", "param", "code"}}`; Anthropic's routes
 * send the same status in Anthropic's envelope.
 *
 * @module
 */
import { BatchError } from "../batch/model/errors.ts";
import { anthropicErrorType } from "../batch/message_batches/batch_results.ts";
import type { Logger } from "../shared/logger.ts";
import { RequestError } from "./request_error.ts";

/** OpenAI's error body. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** A status, the body to send with it, and extra headers. */
export interface ErrorReply {
  status: 400 | 401 | 403 | 404 | 408 | 409 | 413 | 415 | 429 | 500 | 503;
  body: OpenAIErrorBody;
  /** `x-should-retry: false` on conflicts: the official SDKs retry 409s otherwise, and ours never change. */
  headers?: Record<string, string>;
}

const body = (message: string, type: string, param: string | null, code: string | null): OpenAIErrorBody => ({
  error: { message, type, param, code },
});

/**
 * Maps any thrown value to the reply the client gets. Client mistakes are 4xx
 * with a message and `param`; anything unexpected is a 500 whose details are
 * logged, not sent.
 *
 * @example
 * ```ts
 * app.onError((error, c) => {
 *   const reply = errorReply(error, logger);
 *   return c.json(reply.body, reply.status);
 * });
 * ```
 */
export function errorReply(error: unknown, logger: Logger): ErrorReply {
  if (error instanceof BatchError) {
    switch (error.code) {
      case "invalid_request":
        return { status: 400, body: body(error.message, "invalid_request_error", error.param, null) };
      case "not_found":
        return { status: 404, body: body(error.message, "invalid_request_error", error.param, null) };
      case "conflict":
        return {
          status: 409,
          body: body(error.message, "invalid_request_error", error.param, null),
          headers: { "x-should-retry": "false" },
        };
      case "too_large":
        return { status: 413, body: body(error.message, "invalid_request_error", error.param, "file_too_large") };
      case "unavailable":
        return { status: 503, body: body(error.message, "server_error", null, "not_ready") };
    }
  }
  if (error instanceof RequestError) {
    switch (error.code) {
      case "invalid_request":
        return { status: 400, body: body(error.message, "invalid_request_error", error.param, null) };
      case "missing_api_key":
        return { status: 401, body: body(error.message, "invalid_request_error", null, "missing_api_key") };
      case "invalid_api_key":
        return { status: 401, body: body(error.message, "invalid_request_error", null, "invalid_api_key") };
      case "not_found":
        return { status: 404, body: body(error.message, "invalid_request_error", null, "unknown_url") };
      case "too_many_streams":
        return { status: 429, body: body(error.message, "rate_limit_error", null, "too_many_streams") };
      case "forbidden":
        return { status: 403, body: body(error.message, "invalid_request_error", null, "forbidden") };
      case "payload_too_large":
        return { status: 413, body: body(error.message, "invalid_request_error", error.param, "file_too_large") };
      case "unsupported_media_type":
        return { status: 415, body: body(error.message, "invalid_request_error", null, "unsupported_media_type") };
      case "not_ready":
        return { status: 503, body: body(error.message, "server_error", null, "not_ready") };
      case "request_timeout":
        return { status: 408, body: body(error.message, "invalid_request_error", null, "request_timeout") };
    }
  }
  logger.error(`unexpected error while serving a request: ${(error as Error)?.stack ?? error}`);
  return {
    status: 500,
    body: body("The server had an error while processing your request.", "server_error", null, null),
  };
}

/** Anthropic's error body. */
export interface AnthropicErrorBody {
  type: "error";
  error: { type: string; message: string };
  request_id: string;
}

/** A reply's error in Anthropic's envelope (its status decided by {@link errorReply}). */
export function anthropicErrorBody(reply: ErrorReply, requestId: string): AnthropicErrorBody {
  return { type: "error", error: { type: anthropicErrorType(reply.status), message: reply.body.error.message }, request_id: requestId };
}
