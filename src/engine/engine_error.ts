/**
 * The engine's one error family: what its steps raise besides the storage's
 * and the target's errors (`failure_policy.ts` says what each means).
 *
 * @module
 */

/** Stable codes carried by {@link EngineError}. */
export type EngineErrorCode =
  /** A slice's bytes are not the ones cut at validation (the input changed in storage). */
  | "input_changed"
  /** The batch's document is not written yet (its creator writes it right after adding the batch): try again shortly. */
  | "not_ready";

/**
 * An error of the engine's work.
 *
 * @example
 * ```ts
 * if (error instanceof EngineError && error.code === "not_ready") retryLater();
 * ```
 */
export class EngineError extends Error {
  /** What went wrong, as a stable code. */
  readonly code: EngineErrorCode;

  constructor(code: EngineErrorCode, message: string) {
    super(message);
    this.name = "EngineError";
    this.code = code;
  }
}
