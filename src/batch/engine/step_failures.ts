/**
 * What the engine does when a step of a batch (validating, running,
 * finalizing) throws: the one place that decides whether an error can heal.
 *
 * @module
 */
import { IntegrityError } from "../../integrity/envelope.ts";
import { StorageError } from "../../storage/errors.ts";
import { TargetError } from "../../targets/types.ts";

/** The verdict on an error thrown by a batch's step. */
export type StepFailure =
  /** Storage is closed or this process lost it: nothing more may be written, the batch is left as it is. */
  | { kind: "stop"; message: string }
  /** The batch document is not at the version the engine wrote last: re-read its version, then go on. */
  | { kind: "conflict"; message: string }
  /** Storage that can heal (a full disk, an I/O error): retry the step later, with capped backoff. */
  | { kind: "transient"; message: string }
  /** Cannot heal: the batch fails with this entry in `errors.data`, its results so far kept. */
  | { kind: "fatal"; code: string; message: string; param: string | null };

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Classifies an error thrown by a batch's step.
 *
 * @example
 * ```ts
 * classifyStepFailure(new StorageError("io", "ENOSPC")); // { kind: "transient", … }
 * classifyStepFailure(new TypeError("x is undefined")); // { kind: "fatal", code: "internal_error", … }
 * ```
 */
export function classifyStepFailure(error: unknown): StepFailure {
  const message = messageOf(error);
  if (error instanceof StorageError) {
    switch (error.code) {
      case "closed":
      case "locked":
        return { kind: "stop", message };
      case "conflict":
        return { kind: "conflict", message };
      case "io":
        return { kind: "transient", message };
      case "not_found":
        // Only the input is read from a store that can lack a key (logs read as empty, documents as null).
        return { kind: "fatal", code: "input_file_missing", message: "The input file can no longer be read.", param: "input_file_id" };
      case "corrupt":
        return { kind: "fatal", code: "storage_corrupted", message: `Stored state failed its integrity check: ${message}`, param: null };
      default:
        return { kind: "fatal", code: "internal_error", message: `batchspool could not go on with this batch: ${message}`, param: null };
    }
  }
  if (error instanceof IntegrityError) {
    // Reading the input, checked stretch by stretch against its upload's digest, is what raises it in a step.
    return {
      kind: "fatal",
      code: "input_file_corrupted",
      message: `The input file was changed on disk after it was uploaded: ${message}.`,
      param: "input_file_id",
    };
  }
  if (error instanceof TargetError && error.code === "misconfigured") {
    return { kind: "fatal", code: "target_misconfigured", message: `The target cannot send requests: ${message}`, param: null };
  }
  return { kind: "fatal", code: "internal_error", message: `batchspool could not go on with this batch: ${message}`, param: null };
}
