/**
 * The cluster layer's one error family.
 *
 * @module
 */

/** Stable codes carried by {@link ClusterError}. */
export type ClusterErrorCode =
  /** Another node claimed the item this node was working on: nothing more of it may be written. */
  | "lease_lost"
  /** A slice's bytes are not the ones cut at validation (the input changed in storage). */
  | "input_changed";

/**
 * An error of the cluster's work.
 *
 * @example
 * ```ts
 * if (error instanceof ClusterError && error.code === "lease_lost") return; // another node has it
 * ```
 */
export class ClusterError extends Error {
  /** What went wrong, as a stable code. */
  readonly code: ClusterErrorCode;

  constructor(code: ClusterErrorCode, message: string) {
    super(message);
    this.name = "ClusterError";
    this.code = code;
  }
}
