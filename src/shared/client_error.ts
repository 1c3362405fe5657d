/**
 * The shape shared by the error families that reach a client: a stable code
 * and the request parameter at fault (OpenAI's `param`). Each layer has its
 * own family on top of it (`BatchError`, `RequestError`); the HTTP layer turns
 * either into a status in one place.
 *
 * @module
 */

/**
 * An error with a stable `code` and the `param` at fault.
 *
 * @example
 * ```ts
 * class BatchError extends ClientError<"not_found" | "conflict"> {
 *   override name = "BatchError";
 * }
 * ```
 */
export class ClientError<Code extends string> extends Error {
  /** What went wrong, as a stable code. */
  readonly code: Code;
  /** The request parameter at fault, when there is one (OpenAI's `param`). */
  readonly param: string | null;

  /** @param options `param` at fault and the underlying `cause` */
  constructor(code: Code, message: string, options: { param?: string | null; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.param = options.param ?? null;
  }
}
