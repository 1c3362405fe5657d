/**
 * The HTTP layer's one error family: a malformed or unauthorised request.
 * Like every error, it becomes a response in `error_response.ts` alone.
 *
 * @module
 */
import { ClientError } from "../shared/client_error.ts";

/** Stable codes carried by {@link RequestError}. */
export type RequestErrorCode =
  | "invalid_request"
  | "invalid_api_key"
  | "missing_api_key"
  | "unsupported_media_type"
  | "payload_too_large"
  | "not_found"
  | "forbidden"
  | "too_many_streams"
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
export class RequestError extends ClientError<RequestErrorCode> {
  override name = "RequestError";
}
