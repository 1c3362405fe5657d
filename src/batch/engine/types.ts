/**
 * The engine's public shapes: its options, and what it offers the HTTP layer
 * (or an embedding program).
 *
 * @module
 */
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Storage } from "../../storage/types.ts";
import type { Target } from "../../targets/types.ts";
import type { FileLimits, FileService } from "../files/file_service.ts";
import type { ValidationLimits } from "../model/input_scan.ts";
import type { BatchObject, BatchStatus } from "../model/objects.ts";
import type { OutboxEntry } from "../model/webhook_event.ts";
import type { BackoffPolicy } from "../run/backoff.ts";
import type { EngineObserver } from "../run/engine_observer.ts";

export type { EngineObserver };

/** Options for {@link createBatchEngine}. */
export interface BatchEngineOptions {
  /** Where files, results and state live (`createFsStorage` or `createMemoryStorage`). */
  storage: Storage;
  /** Where each line's request goes. */
  target: Target;
  /** Requests in flight toward the target at most (default 32). */
  concurrency?: number;
  /** Requests-per-minute budget toward the target. */
  requestsPerMinute?: number;
  /** Tokens-per-minute budget toward the target. */
  tokensPerMinute?: number;
  /** Retries of a retryable failure before the line goes to the error file (default 5). */
  maxRetries?: number;
  /** Delays between retries (default 500 ms doubling, capped at 60 s, with jitter). */
  backoff?: BackoffPolicy;
  /**
   * Delays before a batch's step that failed on storage that can heal (a full
   * disk) is tried again (default 2 s doubling, capped at 60 s, with jitter).
   */
  stepRetry?: BackoffPolicy;
  /** How long requests in flight may finish after a cancel before they are aborted (default 30 s). */
  cancelGraceMs?: number;
  /** How long requests in flight may finish on shutdown before they are aborted (default 5 s). */
  shutdownGraceMs?: number;
  /** Endpoints a batch may target (default: the five OpenAI text endpoints). */
  endpoints?: readonly string[];
  /** Upload size limits (default 512 MB a file, 200 MB a batch input). */
  fileLimits?: Partial<FileLimits>;
  /** Validation limits (default 50,000 requests, 1,000 listed errors, 16 MiB lines). */
  validation?: Partial<ValidationLimits>;
  /**
   * Validate batch inputs on a worker thread while they upload (default: on
   * Deno, off on Node and Bun; see `SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT`). It
   * frees the receiving thread, but costs a copy of every chunk, the worker's
   * start and some memory while an upload arrives (BENCHMARKS.md, benchmark 3). Where no worker
   * can start, uploads are validated in the receiving thread.
   */
  scanUploadsOffThread?: boolean;
  /** Checkpoint every `intervalMs` (default 5 s) keeping `keep` (default 3); `false` disables them. */
  checkpoints?: { intervalMs?: number; keep?: number } | false;
  /** Identifies this engine in checkpoints. */
  nodeId?: string;
  /** Where the engine reports what happens (default: the console). */
  logger?: Logger;
  /** Where time comes from: timestamps, timers, budgets (injectable for tests). */
  clock?: Clock;
  /** Told what the engine does, for metrics (see `createPrometheusMetrics`). */
  observer?: EngineObserver;
  /**
   * Records an event in the webhook outbox (documents under `webhooks/outbox/`)
   * whenever a batch of an owner it `wants` ends; a deliverer sends them
   * (see `createWebhookDeliverer`).
   */
  webhooks?: WebhookOutboxOptions;
}

/** Which owners' batches record webhook events, and who hears of a new one. */
export interface WebhookOutboxOptions {
  /** Whether the owner has an endpoint. */
  wants(owner: string): boolean;
  /** Called once an event is durable in the outbox (a deliverer can send it at once). */
  recorded?(entry: OutboxEntry): void;
}

/** What an engine is doing at one moment. */
export interface EngineStats {
  /** Batches that have not ended, by status. */
  batches: Partial<Record<BatchStatus, number>>;
  /** Lines of running batches not yet sent (or waiting to be sent again). */
  linesWaiting: number;
  /** Requests toward the target that have not been answered. */
  requestsInFlight: number;
}

/** A page of batches. */
export interface BatchPage {
  /** Batches, newest first. */
  data: BatchObject[];
  /** Whether more follow after the last one. */
  has_more: boolean;
}

/** What the HTTP layer (or an embedding program) uses. */
export interface BatchEngine {
  /** The file service the engine reads inputs from and records results with. */
  readonly files: FileService;
  /** Where requests go. */
  readonly target: Target;
  /** True once recovery is done and new work is accepted. */
  readonly ready: boolean;
  /** Recovers unfinished batches and starts working. */
  start(): Promise<void>;
  /** Creates a batch from a `POST /v1/batches` body. @throws {BatchError} `invalid_request` naming the param. */
  createBatch(owner: string, body: unknown): Promise<BatchObject>;
  /** A batch, with live counts while it runs. @throws {BatchError} `not_found` */
  getBatch(owner: string, batchId: string): Promise<BatchObject>;
  /** An owner's batches, newest first (`limit` 1..100, default 20). */
  listBatches(owner: string, options: { after?: string; limit?: number }): Promise<BatchPage>;
  /** Moves a batch to `cancelling`. @throws {BatchError} `conflict` when it already ended, `not_found` */
  cancelBatch(owner: string, batchId: string): Promise<BatchObject>;
  /** Whether a file is the input of a batch that has not ended. */
  isInputOfActiveBatch(fileId: string): boolean;
  /** What is going on now, for metrics. */
  stats(): EngineStats;
  /** Writes a checkpoint now; returns its sequence number (null when checkpoints are off). */
  checkpoint(): Promise<number | null>;
  /** Stops dispatching, lets requests in flight finish (within a bound), writes a last checkpoint. */
  close(): Promise<void>;
}
