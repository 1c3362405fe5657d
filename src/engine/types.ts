/**
 * The engine's public shapes: its options, and what it offers the HTTP layer
 * (or an embedding program).
 *
 * @module
 */
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import type { Storage } from "../storage/types.ts";
import type { Target } from "../targets/types.ts";
import type { FileLimits, FileService } from "../batch/files/file_service.ts";
import type { ValidationLimits } from "../batch/model/input_scan.ts";
import type { BatchObject, BatchStatus, MessageBatchState } from "../batch/model/objects.ts";
import type { IdempotencyKeys } from "../batch/model/idempotency.ts";
import type { OutboxEntry } from "../batch/model/webhook_event.ts";
import type { BackoffPolicy } from "./lines/backoff.ts";
import type { EngineObserver } from "./lines/engine_observer.ts";
import type { ModelBudget } from "./lines/model_budgets.ts";
import type { UpstreamView } from "./lines/upstream_views.ts";

export type { EngineObserver, UpstreamView };

/** Options for {@link createBatchEngine}. */
export interface BatchEngineOptions {
  /**
   * Where files, results and state live: `createFsStorage`, `createMemoryStorage`
   * (this engine is then the only node) or `createPostgresStorage` (this engine
   * is then one node of the schema's cluster, however many there are).
   */
  storage: Storage;
  /** Where each line's request goes. */
  target: Target;
  /** Requests in flight toward the target at most (default 32). */
  concurrency?: number;
  /** Requests-per-minute budget toward the target. */
  requestsPerMinute?: number;
  /** Tokens-per-minute budget toward the target. */
  tokensPerMinute?: number;
  /**
   * Budgets by model, beside the global ones: each model matching a rule's
   * pattern (`*` for any characters; the first matching rule counts) has its
   * own requests and tokens per minute, since upstreams limit each model apart.
   */
  modelBudgets?: readonly ModelBudget[];
  /**
   * Each owner's share of the target, relative to the others' (default 1
   * each): within a priority, owners with work waiting share the requests
   * sent by weight, on every node, and a cluster's claims of slices favour
   * owners holding fewer for their weight. Keys are owners (`ownerOfKey(apiKey)`).
   */
  ownerWeights?: ReadonlyMap<string, number>;
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
  /**
   * Send lines that share leading messages (system prompt, first turns) together, within
   * windows of 1,024 lines, so that a prefix-caching server reuses its cache (default true).
   */
  prefixGrouping?: boolean;
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
  /**
   * On a single node: checkpoint every `intervalMs` (default 5 s), keeping
   * `keep` (default 3); `false` disables them. A cluster's state is its tables.
   */
  checkpoints?: { intervalMs?: number; keep?: number } | false;
  /** This node's name (default: the host's, and a random suffix). */
  nodeId?: string;
  /** On PostgreSQL: how long a node's claim on work outlives its last heartbeat, in seconds (default 15). */
  leaseSeconds?: number;
  /** On PostgreSQL: most lines (default 256) and bytes (default 512 KiB) of a slice, the unit nodes share. */
  sliceLimits?: Partial<{ maxLines: number; maxBytes: number }>;
  /** Most slices this node runs at once (default: 2 on PostgreSQL; every batch on a single node). */
  maxSlices?: number;
  /** How often the node looks at its work ledger (expiries, stops, gone nodes), in milliseconds (default 1 s). */
  pollMs?: number;
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
  /** Each upstream's adaptive limit, requests in flight and replicas, as this node sees them. */
  upstreams: UpstreamView[];
}

/** A batch, and for one of Anthropic's Message Batches API what it keeps besides. */
export interface BatchView {
  batch: BatchObject;
  messageBatch: MessageBatchState | null;
}

/** A page of batches. */
export interface BatchPage {
  /** Batches, newest first. */
  data: BatchObject[];
  /** Whether more follow after the last one. */
  has_more: boolean;
}

/** A node, as `GET /cluster` shows it. */
export interface ClusterNodeView {
  node_id: string;
  host: string;
  pid: number;
  started_at: string;
  last_heartbeat_at: string;
  seconds_since_heartbeat: number;
  /** The items it holds: slices (their lines), validations and finalizings. */
  work: { batch_id: string; kind: string; item: number; first_line: number; lines: number; lease_seconds_left: number | null }[];
}

/** What `GET /cluster` shows. */
export interface ClusterView {
  object: "cluster";
  /** The node that answered. */
  node_id: string;
  /** How long a claim outlives its node's last heartbeat (null: a single node's claims do not lapse). */
  lease_seconds: number | null;
  nodes: ClusterNodeView[];
  /** Batches not yet ended, with their slices. */
  batches: { batch_id: string; stop: string | null; slices: number; slices_left: number | null }[];
  /** The upstreams as the answering node sees them. */
  upstreams: UpstreamView[];
}

/** What the HTTP layer (or an embedding program) uses. */
export interface BatchEngine {
  /** This node's name. */
  readonly nodeId: string;
  /** The file service the engine reads inputs from and records results with. */
  readonly files: FileService;
  /** Where requests go. */
  readonly target: Target;
  /** The first answers to creates made with an `Idempotency-Key`, kept 24 hours. */
  readonly idempotency: IdempotencyKeys;
  /** True once recovery is done and new work is accepted. */
  readonly ready: boolean;
  /** Recovers unfinished batches and starts working. */
  start(): Promise<void>;
  /**
   * Creates a batch from a `POST /v1/batches` body; with `messageBatchRequests`,
   * a batch of Anthropic's Message Batches API of that many requests.
   * @throws {BatchError} `invalid_request` naming the param.
   */
  createBatch(owner: string, body: unknown, options?: { messageBatchRequests?: number }): Promise<BatchObject>;
  /** A batch, with live counts while it runs. @throws {BatchError} `not_found` */
  getBatch(owner: string, batchId: string): Promise<BatchObject>;
  /** An owner's batches, newest first (`limit` 1..100, default 20). */
  listBatches(owner: string, options: { after?: string; limit?: number }): Promise<BatchPage>;
  /** A batch with what its API's view of it needs. @throws {BatchError} `not_found` */
  getBatchView(owner: string, batchId: string): Promise<BatchView>;
  /**
   * An owner's batches of one API (Anthropic's message batches, or the
   * others), newest first: older than `after`, or newer than `before`.
   */
  listBatchViews(
    owner: string,
    options: { after?: string; before?: string; limit: number; messageBatches: boolean },
  ): Promise<{ data: BatchView[]; has_more: boolean }>;
  /** Deletes a batch that ended, with its result files (and a message batch's input). @throws {BatchError} `conflict` before it ends, `not_found` */
  deleteBatch(owner: string, batchId: string): Promise<void>;
  /** Moves a batch to `cancelling`. @throws {BatchError} `conflict` when it already ended, `not_found` */
  cancelBatch(owner: string, batchId: string): Promise<BatchObject>;
  /**
   * The results of a batch recorded so far (batchspool's extension), from
   * `after` on (the `next` of an earlier call; undefined: from the first):
   * JSONL records as in its output and error files, each once across calls,
   * in an order a repeated call gives again. `complete`: the batch had ended
   * before this read, so nothing follows.
   */
  resultsSoFar(owner: string, batchId: string, after?: string): Promise<{ records: ReadableStream<Uint8Array>; next: string; complete: boolean }>;
  /**
   * Pauses a batch (batchspool's extension): it sends nothing more (requests
   * in flight finish), keeps its results, stays paused across restarts, and
   * its completion window keeps running (it can expire while paused). Only a
   * batch validating or in progress can be paused; pausing a paused one
   * changes nothing.
   */
  pauseBatch(owner: string, batchId: string): Promise<BatchObject>;
  /** Resumes a paused batch (resuming one that is not paused changes nothing). */
  resumeBatch(owner: string, batchId: string): Promise<BatchObject>;
  /** Whether a file is the input of a batch that has not ended. */
  isInputOfActiveBatch(fileId: string): Promise<boolean>;
  /** What is going on now, for metrics. */
  stats(): EngineStats;
  /** What the engine is doing now, its batches' figures read from the ledger at once (not as of the last poll). */
  freshStats(): Promise<EngineStats>;
  /** Writes a checkpoint now; returns its sequence number (null when checkpoints are off, or on PostgreSQL). */
  checkpoint(): Promise<number | null>;
  /** The nodes, what each holds, and the batches in work. */
  describeCluster(): Promise<ClusterView>;
  /** Stops dispatching, lets requests in flight finish (within a bound), writes a last checkpoint. */
  close(): Promise<void>;
}
