/**
 * The HTTP layer's one error family: a malformed or unauthorised request.
 * Like every error, it becomes a response in `error_response.ts` alone.
 *
 * @module
 */

/** Stable codes carried by {@link RequestError}. */
export type RequestErrorCode =
  | "invalid_request"
  | "invalid_api_key"
  | "missing_api_key"
  | "unsupported_media_type"
  | "payload_too_large"
  | "not_found"
  | "not_ready"
  | "request_timeout";

/**
 * A request the HTTP layer refuses before it reaches the batch layer.
 *
 * @example
 * ```ts
 * throw new RequestError("unsupported_media_type", "Use multipart/form-data.");
 * ```
 */
export class RequestError extends Error {
  readonly code: RequestErrorCode;
  readonly param: string | null;
  constructor(code: RequestErrorCode, message: string, options: { param?: string | null; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "RequestError";
    this.code = code;
    this.param = options.param ?? null;
  }
}
