/**
 * The engine's one failure policy: what a step (validating, running a slice,
 * finalizing) that threw means, decided here for every ledger, and done by
 * the node (`node.ts`):
 *
 * - `lost`: another node claimed the item (this one was paused past its
 *   lease); its writes were refused, and the item is left to the new holder.
 * - `stop`: this process lost its storage (closed, or its data directory taken
 *   over): nothing more may be written; the item is left as it is.
 * - `conflict`: the batch's document changed under the step (another node's
 *   write, or a write of its own that landed but reported an error): the step
 *   is run again at once, reading the document anew (a few times in a row, then
 *   the document counts as corrupted).
 * - `transient`: storage that can heal (a full disk, a lost connection): the
 *   item is handed back after a delay that doubles from 2 s to 60 s, and the
 *   batch's pause is logged once, and its end.
 * - `fatal`: cannot heal: the batch stops and fails with an `errors.data`
 *   entry saying why, its results so far kept as files. A finalizing that
 *   fails so while the batch is failing ends it without result files.
 *
 * @module
 */
import { isFileBlobKey } from "../batch/model/storage_keys.ts";
import { IntegrityError } from "../integrity/envelope.ts";
import { StorageError } from "../storage/errors.ts";
import { TargetError } from "../targets/types.ts";
import { EngineError } from "./engine_error.ts";
import { LeaseLostError } from "./ledger/ledger.ts";

/** The verdict on an error thrown by a batch's step. */
export type StepFailure =
  /** Another node holds the item now. */
  | { kind: "lost"; message: string }
  /** Storage is closed or this process lost it: nothing more may be written, the batch is left as it is. */
  | { kind: "stop"; message: string }
  /** The batch document is not at the version the step read: read it again, then go on. */
  | { kind: "conflict"; message: string }
  /** Storage that can heal (a full disk, an I/O error), or a batch not yet written: try again later, with capped backoff. */
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
  if (error instanceof LeaseLostError) return { kind: "lost", message };
  if (error instanceof EngineError) {
    switch (error.code) {
      case "not_ready":
        return { kind: "transient", message };
      case "input_changed":
        return { kind: "fatal", code: "input_file_corrupted", message: `The input file was changed after it was uploaded: ${message}.`, param: "input_file_id" };
    }
  }
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
        // Of blobs, a step reads only its batch's input: bytes lost from it are the input's to report.
        if (error.key !== undefined && isFileBlobKey(error.key)) {
          return { kind: "fatal", code: "input_file_corrupted", message: `The input file cannot be read in full: ${message}.`, param: "input_file_id" };
        }
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
