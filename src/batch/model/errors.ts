/**
 * The batch layer's one error family. The HTTP layer turns `code` into a status
 * in one place; nothing here knows about HTTP.
 *
 * @module
 */

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
export class BatchError extends Error {
  /** What went wrong, as a stable code. */
  readonly code: BatchErrorCode;
  /** The request parameter at fault, when there is one (OpenAI's `param`). */
  readonly param: string | null;

  /** @param options `param` at fault and the underlying `cause` */
  constructor(code: BatchErrorCode, message: string, options: { param?: string | null; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = "BatchError";
    this.code = code;
    this.param = options.param ?? null;
  }
}
