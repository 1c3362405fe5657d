/**
 * The batch layer's one error family. The HTTP layer turns `code` into a status
 * in one place; nothing here knows about HTTP.
 *
 * @module
 */
import { ClientError } from "../../shared/client_error.ts";

/** Stable codes carried by {@link BatchError}. */
export type BatchErrorCode =
  | "invalid_request"
  | "not_found"
  | "conflict"
  | "too_large"
  | "unavailable";

/**
 * A request the batch layer refuses, or a state it cannot serve.
 *
 * @example
 * ```ts
 * throw new BatchError("invalid_request", "limit must be between 1 and 100", { param: "limit" });
 * ```
 */
export class BatchError extends ClientError<BatchErrorCode> {
  override name = "BatchError";
}
