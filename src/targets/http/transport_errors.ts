/**
 * Errors the HTTP transports raise for what is not a network failure, so the
 * HTTP target can tell them apart from one (see `fetch_target.ts`).
 *
 * @module
 */

/** An answer larger than the transport accepts: its reading stopped there. */
export class ResponseTooLargeError extends Error {
  override name = "ResponseTooLargeError";
  /** @param limit the most bytes accepted */
  constructor(readonly limit: number) {
    super(`the response is larger than the limit of ${limit} bytes`);
  }
}

/** A request the transport cannot send as configured (a header it refuses, a URL it cannot reach). */
export class TargetConfigError extends Error {
  override name = "TargetConfigError";
}
