/**
 * The objects of the OpenAI Files and Batches APIs, as batchspool returns them,
 * and the records it stores behind them.
 *
 * @module
 */
import type { DigestMarks, MarkedDigest } from "../../integrity/digest_marks.ts";
import type { InputScan } from "./input_scan.ts";

/** Purposes a file can be uploaded with. */
export const UPLOAD_PURPOSES = ["batch", "assistants", "fine-tune", "vision", "user_data", "evals"] as const;

/** A file's purpose; `batch_output` is given to result files. */
export type FilePurpose = (typeof UPLOAD_PURPOSES)[number] | "batch_output";

/** OpenAI's File object. */
export interface FileObject {
  /** `file-…` */
  id: string;
  /** Always `file`. */
  object: "file";
  /** Size in bytes. */
  bytes: number;
  /** Unix seconds. */
  created_at: number;
  /** The uploaded file's name. */
  filename: string;
  /** What the file is for. */
  purpose: FilePurpose;
  /** Deprecated by OpenAI; always `processed` here. */
  status: "uploaded" | "processed" | "error";
  /** Unix seconds after which the file is gone, or null. */
  expires_at: number | null;
  /** Deprecated by OpenAI; always null here. */
  status_details: string | null;
}

/**
 * Where a file's bytes live: an immutable blob, a finished batch's log (a
 * local ledger's results), or a finished batch's rows in a PostgreSQL ledger's
 * results table (`results`, keyed as the log would be).
 */
export interface FileContentRef {
  /** Which store holds the bytes. */
  store: "blobs" | "logs" | "results";
  /** The key in that store. */
  key: string;
}

/** The stored record of a file: the public object plus what only the server needs. */
export interface FileRecord {
  /** The public object. */
  file: FileObject;
  /** The owner (API key) it belongs to. */
  owner: string;
  /** Hex SHA-256 of the bytes (none for `results`, whose records each carry their own). */
  sha256?: string;
  /** SHA-256 of the bytes' prefixes every few MiB, so a reader checks each stretch before it uses it (none for `results`). */
  marks?: DigestMarks;
  /** Where the bytes are. */
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
  /** Stable error code, e.g. `invalid_json_line`. */
  code: string;
  /** What is wrong. */
  message: string;
  /** The field at fault, or null. */
  param: string | null;
  /** 1-based input line, or null. */
  line: number | null;
}

/** Token usage summed over a batch's responses. */
export interface BatchUsage {
  /** Prompt tokens summed. */
  input_tokens: number;
  /** Cached prompt tokens. */
  input_tokens_details: { cached_tokens: number };
  /** Completion tokens summed. */
  output_tokens: number;
  /** Reasoning tokens. */
  output_tokens_details: { reasoning_tokens: number };
  /** All tokens. */
  total_tokens: number;
}

/** Request counts of a batch. */
export interface RequestCounts {
  /** Requests in the input. */
  total: number;
  /** Lines in the output file. */
  completed: number;
  /** Lines in the error file. */
  failed: number;
}

/** OpenAI's Batch object. */
export interface BatchObject {
  /** `batch_…` */
  id: string;
  /** Always `batch`. */
  object: "batch";
  /** The endpoint every line targets. */
  endpoint: string;
  /** The first model named by the input, or null. */
  model: string | null;
  /** The input file. */
  input_file_id: string;
  /** As given, e.g. `24h`. */
  completion_window: string;
  /** Where it is in the lifecycle. */
  status: BatchStatus;
  /** Results with a 2xx response, once finalized. */
  output_file_id: string | null;
  /** Other results, once finalized. */
  error_file_id: string | null;
  /** The caller's key/value pairs. */
  metadata: Record<string, string> | null;
  /** Validation (or input) errors. */
  errors: { object: "list"; data: BatchErrorEntry[] } | null;
  /** Unix seconds. */
  created_at: number;
  /** When validation passed. */
  in_progress_at: number | null;
  /** When the completion window ends. */
  expires_at: number;
  /** When finalizing began. */
  finalizing_at: number | null;
  /** When it completed. */
  completed_at: number | null;
  /** When it failed. */
  failed_at: number | null;
  /** When it expired. */
  expired_at: number | null;
  /** When the cancel was asked. */
  cancelling_at: number | null;
  /** When it was cancelled. */
  cancelled_at: number | null;
  /** Counts, live while it runs. */
  request_counts: RequestCounts;
  /** Tokens summed over the responses. */
  usage: BatchUsage;
  /** batchspool's extension: higher goes first (absent in records older than it: 0). */
  priority?: number;
  /** batchspool's extension: most of its requests in flight at once (null: no limit of its own). */
  max_concurrency?: number | null;
  /** batchspool's extension: when it was paused (null: it runs). */
  paused_at?: number | null;
}

/** The stored record of a batch: the public object plus the engine's own state. */
export interface BatchRecord {
  /** The public object. */
  batch: BatchObject;
  /** The owner (API key) it belongs to. */
  owner: string;
  /** The input file's SHA-256, size and digest marks: every read of the input is checked against them. */
  input_digest: MarkedDigest;
  /** Physical lines in the input (blank ones included), known after validation. */
  input_lines: number;
  /** Output files' expiry (seconds after their creation), from `output_expires_after`. */
  output_expires_after_seconds: number | null;
  /** Ids reserved for the result files when finalizing starts, so a retry reuses them. */
  planned_output_file_id: string | null;
  planned_error_file_id: string | null;
  /** Set for a batch made through Anthropic's Message Batches API. */
  message_batch?: MessageBatchState;
}

/** What a batch of Anthropic's Message Batches API keeps besides an OpenAI batch's record. */
export interface MessageBatchState {
  /** The requests it was created with (every one gets a result, whatever ends the batch). */
  requests: number;
  /**
   * Results recorded when a cancel or an expiry ended it, before its undone
   * requests were recorded as `canceled` or `expired` (set once, by the first
   * finalizer): the rest of its results are those.
   */
  results_before_end: number | null;
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

/** A copy of a usage object (cheaper than `structuredClone`, which is slow on some runtimes). */
export function copyUsage(usage: BatchUsage): BatchUsage {
  return {
    input_tokens: usage.input_tokens,
    input_tokens_details: { cached_tokens: usage.input_tokens_details.cached_tokens },
    output_tokens: usage.output_tokens,
    output_tokens_details: { reasoning_tokens: usage.output_tokens_details.reasoning_tokens },
    total_tokens: usage.total_tokens,
  };
}

/** A copy of a Batch object that shares nothing with the original. */
export function copyBatch(batch: BatchObject): BatchObject {
  return {
    ...batch,
    metadata: batch.metadata === null ? null : { ...batch.metadata },
    errors: batch.errors === null ? null : { object: "list", data: batch.errors.data.map((entry) => ({ ...entry })) },
    request_counts: { ...batch.request_counts },
    usage: copyUsage(batch.usage),
  };
}
