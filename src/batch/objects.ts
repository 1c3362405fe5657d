/**
 * The objects of the OpenAI Files and Batches APIs, as batchspool returns them,
 * and the records it stores behind them.
 *
 * @module
 */
import type { InputScan } from "./validate_input.ts";

/** Purposes a file can be uploaded with. */
export const UPLOAD_PURPOSES = ["batch", "assistants", "fine-tune", "vision", "user_data", "evals"] as const;

/** A file's purpose; `batch_output` is given to result files. */
export type FilePurpose = (typeof UPLOAD_PURPOSES)[number] | "batch_output";

/** OpenAI's File object. */
export interface FileObject {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  filename: string;
  purpose: FilePurpose;
  status: "uploaded" | "processed" | "error";
  expires_at: number | null;
  status_details: string | null;
}

/** Where a file's bytes live: an immutable blob, or a finished batch log. */
export interface FileContentRef {
  store: "blobs" | "logs";
  key: string;
}

/** The stored record of a file: the public object plus what only the server needs. */
export interface FileRecord {
  file: FileObject;
  owner: string;
  sha256: string;
  content: FileContentRef;
  /** For a batch input: what validation found while it was uploaded. */
  scan?: InputScan;
}

/** Statuses of the batch lifecycle. */
export type BatchStatus =
  | "validating"
  | "failed"
  | "in_progress"
  | "finalizing"
  | "completed"
  | "expired"
  | "cancelling"
  | "cancelled";

/** Statuses after which nothing more happens to a batch. */
export const FINAL_STATUSES: ReadonlySet<BatchStatus> = new Set(["failed", "completed", "expired", "cancelled"]);

/** One entry of a batch's `errors.data`. */
export interface BatchErrorEntry {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

/** Token usage summed over a batch's responses. */
export interface BatchUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

/** Request counts of a batch. */
export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

/** OpenAI's Batch object. */
export interface BatchObject {
  id: string;
  object: "batch";
  endpoint: string;
  model: string | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  metadata: Record<string, string> | null;
  errors: { object: "list"; data: BatchErrorEntry[] } | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: RequestCounts;
  usage: BatchUsage;
}

/** The stored record of a batch: the public object plus the engine's own state. */
export interface BatchRecord {
  batch: BatchObject;
  owner: string;
  /** SHA-256 of the input file, checked before the input is trusted again. */
  input_sha256: string;
  /** Physical lines in the input (blank ones included), known after validation. */
  input_lines: number;
  /** Output files' expiry (seconds after their creation), from `output_expires_after`. */
  output_expires_after_seconds: number | null;
  /** Ids reserved for the result files when finalizing starts, so a retry reuses them. */
  planned_output_file_id: string | null;
  planned_error_file_id: string | null;
}

/** A zeroed usage object. */
export function emptyUsage(): BatchUsage {
  return {
    input_tokens: 0,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: 0,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: 0,
  };
}
