/**
 * The batch engine: creates, runs, cancels, expires, finalizes and recovers
 * batches on top of a storage adapter and a target.
 *
 * Lifecycle, as OpenAI's:
 * ```
 * validating ─→ failed
 * validating ─→ in_progress ─→ finalizing ─→ completed
 * in_progress ─→ expired
 * validating | in_progress | finalizing ─→ cancelling ─→ cancelled
 * ```
 *
 * Crash safety: the batch document is replaced atomically on every transition;
 * results go to append-only logs, group-committed; `active/<id>` lists the
 * batches that have not ended. On start, every active batch is resumed: its
 * finished lines are learned from the newest valid checkpoint plus the logs'
 * tails (or a full scan of the logs), and only the other lines are sent. A
 * request in flight at a crash is sent again (at-least-once toward the
 * target), but its result is written exactly once.
 *
 * @module
 */
import { SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT } from "../../runtime/threads.ts";
import { type Clock, MAX_TIMER_MS, sleep, systemClock } from "../../shared/clock.ts";
import { isStorageError } from "../../storage/errors.ts";
import type { Storage } from "../../storage/types.ts";
import { activate, type ActiveBatch, liveBatchObject, type StopReason } from "../run/active_batch.ts";
import { type BatchParams, DEFAULT_ENDPOINTS, parseBatchParams } from "../model/batch_params.ts";
import { type BatchSnapshot, CheckpointStore, type EngineSnapshot } from "./checkpoints.ts";
import { Dispatcher } from "../run/dispatcher.ts";
import { BatchError } from "../model/errors.ts";
import { createFileService, DEFAULT_FILE_LIMITS, type FileLimits, type FileService } from "../files/file_service.ts";
import { recordResultFiles } from "./result_files.ts";
import { isBatchId, newBatchId, newFileId } from "../model/ids.ts";
import { dispatchLines, expireRemaining, type RunContext } from "../run/line_runner.ts";
import { OffThreadScanner } from "../input/off_thread_scan.ts";
import { consoleLogger, type Logger } from "../../shared/logger.ts";
import {
  type BatchErrorEntry,
  type BatchObject,
  type BatchRecord,
  type BatchStatus,
  copyBatch,
  copyUsage,
  emptyUsage,
  FINAL_STATUSES,
} from "../model/objects.ts";
import { BatchProgress } from "../run/batch_progress.ts";
import { createResultWriter } from "../run/result_writer.ts";
import { type BackoffPolicy, backoffDelay, DEFAULT_BACKOFF } from "../run/backoff.ts";
import { classifyStepFailure } from "./step_failures.ts";
import {
  ACTIVE_PREFIX,
  activeBatchKey,
  batchDocKey,
  batchDocPrefix,
  errorLogKey,
  fileBlobKey,
  fileDocKey,
  outputLogKey,
} from "../model/storage_keys.ts";
import type { Target } from "../../targets/types.ts";
import { DEFAULT_VALIDATION_LIMITS, resolveScan, validateInput, type ValidationLimits } from "../input/validation.ts";

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
   * start and 13-50 MB more memory while an upload arrives. Where no worker
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
  /** Writes a checkpoint now; returns its sequence number (null when checkpoints are off). */
  checkpoint(): Promise<number | null>;
  /** Stops dispatching, lets requests in flight finish (within a bound), writes a last checkpoint. */
  close(): Promise<void>;
}

/** The default delays before a failed step is tried again. */
const DEFAULT_STEP_RETRY: BackoffPolicy = { baseMs: 2_000, maxMs: 60_000 };
/** Conflicts on the batch document in a row after which it is treated as corrupted. */
const MAX_CONFLICTS_IN_A_ROW = 5;

/**
 * Creates a batch engine. Call `start()` before use.
 *
 * @example
 * ```ts
 * const storage = await createFsStorage({ dir: "./batchspool-data" });
 * const engine = createBatchEngine({ storage, target: createMockTarget() });
 * await engine.start();
 * ```
 */
export function createBatchEngine(options: BatchEngineOptions): BatchEngine {
  const storage = options.storage;
  const logger = options.logger ?? consoleLogger;
  const clock = options.clock ?? systemClock;
  const nowSeconds = () => Math.floor(clock.now() / 1000);
  const stepRetry = options.stepRetry ?? DEFAULT_STEP_RETRY;
  const endpoints = options.endpoints ?? DEFAULT_ENDPOINTS;
  const validationLimits = { ...DEFAULT_VALIDATION_LIMITS, ...options.validation };
  const cancelGraceMs = options.cancelGraceMs ?? 30_000;
  const shutdownGraceMs = options.shutdownGraceMs ?? 5_000;
  const active = new Map<string, ActiveBatch>();
  const runs = new Set<Promise<void>>();
  /** Aborted on close: no new line is dispatched. */
  const closing = new AbortController();
  /** Aborted when the shutdown grace period is over: requests in flight are abandoned. */
  const abandoning = new AbortController();
  const checkpointOptions = options.checkpoints === false ? null : options.checkpoints ?? {};
  const checkpointStore = checkpointOptions
    ? new CheckpointStore(storage, { keep: checkpointOptions.keep ?? 3, logger })
    : null;
  const nodeId = options.nodeId ?? `node-${crypto.randomUUID().slice(0, 8)}`;
  let ready = false;
  let lastCheckpointState = "";

  const dispatcher = new Dispatcher({
    concurrency: options.concurrency ?? 32,
    requestsPerMinute: options.requestsPerMinute,
    tokensPerMinute: options.tokensPerMinute,
    clock,
  });
  /** Housekeeping under way (checkpoints, sweeps): `close` waits for it. */
  const housekeeping = new Set<Promise<void>>();
  /** Runs `task` now when `atOnce`, then every `ms` until the engine closes, never two at once. */
  const repeat = (ms: number, task: () => Promise<void>, atOnce = false) => {
    const runTask = () => {
      const running = task();
      housekeeping.add(running);
      void running.finally(() => housekeeping.delete(running)).then(next);
    };
    const next = () => {
      if (closing.signal.aborted) return;
      const timer = clock.setTimeout(() => {
        closing.signal.removeEventListener("abort", stop);
        runTask();
      }, ms);
      const stop = () => clock.clearTimeout(timer);
      closing.signal.addEventListener("abort", stop, { once: true });
    };
    if (atOnce) runTask();
    else next();
  };
  const offThreadScanner = (options.scanUploadsOffThread ?? SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT)
    ? new OffThreadScanner({ logger })
    : undefined;
  const files = createFileService(storage, {
    limits: { ...DEFAULT_FILE_LIMITS, ...options.fileLimits },
    validation: validationLimits,
    clock,
    isInUse: (fileId) => engine.isInputOfActiveBatch(fileId),
    offThreadScanner,
    logger,
  });
  const context: RunContext = {
    storage,
    target: options.target,
    dispatcher,
    maxRetries: options.maxRetries ?? 5,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    stopping: closing.signal,
    abandon: abandoning.signal,
    logger,
    clock,
  };

  const notFound = (batchId: string) => new BatchError("not_found", `No such Batch object: ${batchId}`, { param: "id" });

  /** Writes the batch document (serialised per batch, compare-and-swap on the version). */
  const persist = (batch: ActiveBatch): Promise<void> => {
    const write = batch.writes.then(async () => {
      batch.version = await storage.documents.put(
        batchDocKey(batch.record.owner, batch.record.batch.id),
        batch.record,
        { ifVersion: batch.version },
      );
    });
    batch.writes = write.catch(() => {});
    return write;
  };

  const attachProgress = (batch: ActiveBatch, progress: BatchProgress) => {
    batch.progress = progress;
    batch.results = createResultWriter(storage, batch.record.batch.id, progress, clock);
  };

  const setStatus = (batch: ActiveBatch, status: BatchStatus) => {
    const b = batch.record.batch;
    b.status = status;
    const now = nowSeconds();
    switch (status) {
      case "in_progress":
        b.in_progress_at = now;
        break;
      case "finalizing":
        b.finalizing_at = now;
        break;
      case "completed":
        b.completed_at = now;
        break;
      case "failed":
        b.failed_at = now;
        break;
      case "expired":
        b.expired_at = now;
        break;
      case "cancelling":
        b.cancelling_at = now;
        break;
      case "cancelled":
        b.cancelled_at = now;
        break;
    }
  };

  const stopBatch = (batch: ActiveBatch, reason: StopReason) => {
    batch.stop ??= reason;
    batch.stopDispatch.abort();
  };

  const addTimer = (batch: ActiveBatch, ms: number, action: () => void) => {
    const timer = clock.setTimeout(() => {
      batch.timers.delete(timer);
      action();
    }, Math.min(ms, MAX_TIMER_MS));
    batch.timers.add(timer);
  };

  const scheduleExpiry = (batch: ActiveBatch) => {
    const check = () => {
      const remaining = batch.record.batch.expires_at * 1000 - clock.now();
      if (remaining > 0) return addTimer(batch, remaining, check);
      const status = batch.record.batch.status;
      if (status === "validating" || status === "in_progress") {
        stopBatch(batch, "expire");
        batch.abortRequests.abort();
      }
    };
    check();
  };

  const forget = async (batch: ActiveBatch) => {
    for (const timer of batch.timers) clock.clearTimeout(timer);
    batch.timers.clear();
    active.delete(batch.record.batch.id);
    await storage.documents.delete(activeBatchKey(batch.record.batch.id));
    const inputId = batch.record.batch.input_file_id;
    if (!engine.isInputOfActiveBatch(inputId) && !(await storage.documents.get(fileDocKey(batch.record.owner, inputId)))) {
      await storage.blobs.delete(fileBlobKey(inputId));
    }
  };

  const fail = async (batch: ActiveBatch, errors: BatchErrorEntry[]) => {
    batch.record.batch.errors = { object: "list", data: errors };
    setStatus(batch, "failed");
    await persist(batch);
    await forget(batch);
    logger.info(`batch ${batch.record.batch.id} failed validation (${errors.length} error(s))`);
  };

  const validate = async (batch: ActiveBatch) => {
    const b = batch.record.batch;
    let fileRecord;
    try {
      fileRecord = await files.get(batch.record.owner, b.input_file_id);
    } catch (error) {
      if (error instanceof BatchError && error.code === "not_found") {
        return fail(batch, [{ code: "invalid_request", message: "The input file no longer exists.", param: "input_file_id", line: null }]);
      }
      throw error;
    }
    // A scan made while the file was uploaded leaves nothing to read: the bytes are checked
    // against the upload's digest marks, stretch by stretch, as the batch reads them.
    let result = fileRecord.scan && resolveScan(fileRecord.scan, b.endpoint, validationLimits);
    if (!result) {
      const validated = await validateInput(await storage.blobs.get(fileRecord.content.key), b.endpoint, validationLimits);
      if (validated.sha256 !== fileRecord.sha256) {
        return fail(batch, [{
          code: "input_file_corrupted",
          message: `The input file's SHA-256 is ${validated.sha256}, not ${fileRecord.sha256} as uploaded: it was changed on disk.`,
          param: "input_file_id",
          line: null,
        }]);
      }
      result = validated;
    }
    if (result.errors.length) {
      if (result.unlistedErrors) {
        result.errors.push({
          code: "too_many_errors",
          message: `${result.unlistedErrors} more error(s) were found and not listed.`,
          param: null,
          line: null,
        });
      }
      return fail(batch, result.errors);
    }
    batch.record.input_lines = result.lines;
    b.model = result.model;
    b.request_counts = { total: result.requests, completed: 0, failed: 0 };
    attachProgress(batch, new BatchProgress(result.lines));
    // A cancel that arrived during validation has already moved the batch to cancelling.
    if (batch.stop !== "cancel") setStatus(batch, "in_progress");
    await persist(batch);
  };

  /** Ends a batch that can no longer run; results already written are kept as files. */
  const failRunning = async (batch: ActiveBatch, failure: BatchErrorEntry) => {
    batch.record.batch.errors = { object: "list", data: [failure] };
    if (planResultFiles(batch)) await persist(batch);
    await recordResultFiles(storage, files, batch, nowSeconds());
    applyCounts(batch);
    setStatus(batch, "failed");
    await persist(batch);
    await forget(batch);
  };

  /** Ends a batch whose results cannot be recorded as files: only its status and the reason are written. */
  const failWithoutResults = async (batch: ActiveBatch, failure: BatchErrorEntry) => {
    batch.record.batch.errors = { object: "list", data: [failure] };
    applyCounts(batch);
    setStatus(batch, "failed");
    await persist(batch);
    await forget(batch);
  };

  /**
   * Picks the ids of the batch's result files, unless it has them; true when
   * it did, and the record must be written before any file is recorded.
   */
  const planResultFiles = (batch: ActiveBatch): boolean => {
    const record = batch.record;
    if (record.planned_output_file_id && record.planned_error_file_id) return false;
    record.planned_output_file_id = newFileId(clock.now());
    record.planned_error_file_id = newFileId(clock.now());
    return true;
  };

  const applyCounts = (batch: ActiveBatch) => {
    const progress = batch.progress;
    if (!progress) return;
    const b = batch.record.batch;
    b.request_counts = { total: b.request_counts.total, completed: progress.completed, failed: progress.failed };
    b.usage = copyUsage(progress.usage);
  };

  const finalize = async (batch: ActiveBatch, outcome: "completed" | "cancelled" | "expired") => {
    const b = batch.record.batch;
    // The move to finalizing and the result files' ids take one write.
    let unsaved = planResultFiles(batch);
    if (outcome === "completed" && b.status !== "finalizing") {
      setStatus(batch, "finalizing");
      unsaved = true;
    }
    if (unsaved) await persist(batch);
    await recordResultFiles(storage, files, batch, nowSeconds());
    applyCounts(batch);
    // A cancel that arrived while finalizing turns the outcome into cancelled.
    setStatus(batch, batch.stop === "cancel" ? "cancelled" : outcome);
    await persist(batch);
    await forget(batch);
    logger.info(
      `batch ${b.id} ${b.status}: ${b.request_counts.completed} completed, ${b.request_counts.failed} failed of ${b.request_counts.total}`,
    );
  };

  /** Moves a batch along its lifecycle until it ends or the engine closes. */
  const advance = async (batch: ActiveBatch) => {
    const b = batch.record.batch;
    if (batch.versionUnknown) {
      const stored = await storage.documents.get<BatchRecord>(batchDocKey(batch.record.owner, b.id));
      if (stored) batch.version = stored.version;
      batch.versionUnknown = false;
    }
    if (batch.failure) return failRunning(batch, batch.failure);
    if (b.status === "validating") {
      await validate(batch);
      if (FINAL_STATUSES.has(b.status)) return;
    }
    if (b.status === "in_progress") {
      if (batch.stop === null) await dispatchLines(context, batch);
      if (closing.signal.aborted) return;
      if (batch.stop === "expire") await expireRemaining(context, batch);
      if (batch.stop === "expire") return finalize(batch, "expired");
      if (batch.stop === "cancel") return finalize(batch, "cancelled");
      return finalize(batch, "completed");
    }
    if (b.status === "cancelling") return finalize(batch, "cancelled");
    if (b.status === "finalizing") return finalize(batch, "completed");
  };

  /**
   * Runs a batch's steps until it ends, the engine closes, or its storage is
   * gone. A step that throws is judged by `classifyStepFailure`: storage that
   * can heal is tried again with capped backoff (logged when the batch pauses
   * and when it resumes), a conflict re-reads the document's version, and
   * anything else fails the batch with an `errors.data` entry saying why.
   */
  const run = (batch: ActiveBatch) => {
    const id = batch.record.batch.id;
    /**
     * After a failure, brings `progress` in line with the logs: a failed append may
     * still have left whole records in a log, and their lines must not be sent again.
     */
    const resync = async () => {
      if (!batch.progress) return;
      await absorbLogTails(id, batch.progress);
      attachProgress(batch, batch.progress);
    };
    const promise = (async () => {
      let pausedFor: string | null = null;
      let retries = 0;
      let conflicts = 0;
      let needsResync = false;
      for (;;) {
        try {
          if (needsResync) await resync();
          needsResync = false;
          await advance(batch);
          if (pausedFor !== null && !closing.signal.aborted) logger.info(`batch ${id}: resumed`);
          return;
        } catch (error) {
          if (closing.signal.aborted) return;
          const failure = classifyStepFailure(error);
          if (failure.kind !== "conflict") conflicts = 0;
          switch (failure.kind) {
            case "stop":
              logger.error(`batch ${id}: stopped, its storage is gone: ${failure.message}`);
              return;
            case "conflict":
              if (++conflicts <= MAX_CONFLICTS_IN_A_ROW) {
                batch.versionUnknown = true;
                continue;
              }
              batch.failure ??= { code: "storage_corrupted", message: `Its document keeps changing: ${failure.message}`, param: null, line: null };
              continue;
            case "transient": {
              if (pausedFor !== failure.message) {
                logger.error(`batch ${id}: paused, storage failed: ${failure.message}; trying again with backoff (at most ${stepRetry.maxMs / 1000} s apart)`);
                pausedFor = failure.message;
              }
              needsResync = true;
              if (!(await sleep(clock, backoffDelay(retries++, stepRetry), closing.signal))) return;
              continue;
            }
            case "fatal":
              if (batch.failure) {
                // Failing it with its results failed too: fail it without them, or else leave it for an operator.
                logger.error(`batch ${id}: its results could not be kept as files: ${failure.message}`);
                await failWithoutResults(batch, batch.failure).catch((again) =>
                  logger.error(`batch ${id}: could not be marked failed (${(again as Error).message}); it is left as it is`)
                );
                return;
              }
              logger.error(`batch ${id}: failed: ${failure.message}`);
              batch.failure = { code: failure.code, message: failure.message, param: failure.param, line: null };
              needsResync = true;
              continue;
          }
        }
      }
    })();
    runs.add(promise);
    promise.finally(() => runs.delete(promise));
  };

  const snapshot = (): EngineSnapshot => {
    const batches: Record<string, BatchSnapshot> = {};
    for (const [id, batch] of active) {
      batches[id] = {
        status: batch.record.batch.status,
        progress: batch.progress?.snapshot() ?? null,
        inFlight: [...batch.inFlight],
      };
    }
    return {
      format: 1,
      nodeId,
      createdAt: clock.now(),
      queued: [...active.keys()],
      batches,
      metadata: { batchspool: "0.1.0" },
    };
  };

  /** Marks finished every line whose record is in the logs past what `progress` already knows. */
  const absorbLogTails = async (id: string, progress: BatchProgress) => {
    for (const [kind, key, from] of [
      ["output", outputLogKey(id), progress.outputLength],
      ["errors", errorLogKey(id), progress.errorLength],
    ] as const) {
      const report = await progress.absorbLog(kind, await storage.logs.read(key, from), from);
      if (report.unreadable || report.duplicates) {
        logger.warn(
          `batch ${id}: ${kind} log has ${report.unreadable} unreadable and ${report.duplicates} duplicate record(s); ignored`,
        );
      }
    }
  };

  /** Rebuilds a resumed batch's progress from a checkpoint's snapshot and the logs' tails. */
  const recoverProgress = async (batch: ActiveBatch, fromCheckpoint: BatchSnapshot | undefined) => {
    const id = batch.record.batch.id;
    const lines = batch.record.input_lines;
    const outKey = outputLogKey(id);
    const errKey = errorLogKey(id);
    const [outLength, errLength] = [await storage.logs.length(outKey), await storage.logs.length(errKey)];
    let progress: BatchProgress | null = null;
    const saved = fromCheckpoint?.progress;
    if (saved && saved.lines === lines && saved.outputLength <= outLength && saved.errorLength <= errLength) {
      try {
        progress = BatchProgress.fromSnapshot(saved);
      } catch (error) {
        logger.warn(`batch ${id}: checkpoint progress unusable (${(error as Error).message}); scanning its logs`);
      }
    }
    progress ??= new BatchProgress(lines);
    const tail = outLength - progress.outputLength + errLength - progress.errorLength;
    await absorbLogTails(batch.record.batch.id, progress);
    attachProgress(batch, progress);
    logger.info(
      `batch ${id}: resumed at ${progress.finished}/${batch.record.batch.request_counts.total} ` +
        `(${fromCheckpoint?.progress ? `checkpoint + ${tail} log bytes` : `full scan of ${outLength + errLength} log bytes`})`,
    );
  };

  const recover = async () => {
    const latest = checkpointStore ? await checkpointStore.loadLatest() : null;
    if (latest) logger.info(`recovering from checkpoint ${latest.sequence}`);
    let after: string | undefined;
    const resumed: ActiveBatch[] = [];
    for (;;) {
      const page = await storage.documents.list(ACTIVE_PREFIX, { after, limit: 1000 });
      for (const key of page.keys) {
        after = key;
        const batchId = key.slice(ACTIVE_PREFIX.length);
        try {
          const entry = await storage.documents.get<{ owner: string }>(key);
          const doc = entry && await storage.documents.get<BatchRecord>(batchDocKey(entry.value.owner, batchId));
          if (!doc || FINAL_STATUSES.has(doc.value.batch.status)) {
            // The batch ended (or never got written) just before a crash: only the index entry is left.
            await storage.documents.delete(key);
            continue;
          }
          const batch = activate(doc.value, doc.version);
          if (doc.value.batch.status === "cancelling") batch.stop = "cancel";
          if (doc.value.batch.status !== "validating") {
            await recoverProgress(batch, latest?.snapshot.batches[batchId]);
          }
          active.set(batchId, batch);
          resumed.push(batch);
        } catch (error) {
          if (!isStorageError(error, "corrupt")) throw error;
          // Never trust a document that fails its hash: report it and leave the batch for an operator.
          logger.error(`batch ${batchId} was not resumed: ${(error as Error).message}`);
        }
      }
      if (!page.more) break;
    }
    return resumed;
  };

  const engine: BatchEngine = {
    files,
    target: options.target,
    get ready() {
      return ready;
    },

    async start() {
      const resumed = await recover();
      ready = true;
      for (const batch of resumed) {
        scheduleExpiry(batch);
        if (batch.stop) batch.stopDispatch.abort();
        run(batch);
      }
      if (resumed.length) logger.info(`resumed ${resumed.length} unfinished batch(es)`);
      if (checkpointStore) {
        repeat(checkpointOptions?.intervalMs ?? 5_000, () =>
          engine.checkpoint().then(() => {}, (error) => logger.error(`checkpoint failed: ${(error as Error).message}`)));
      }
      // Expired files are swept at start (in the background) and every hour.
      repeat(3_600_000, () =>
        files.sweepExpired().then(() => {}, (error) => logger.error(`expired-file sweep failed: ${(error as Error).message}`)), true);
    },

    async createBatch(owner, body) {
      if (!ready || closing.signal.aborted) throw new BatchError("unavailable", "The server is not ready; try again.");
      const params: BatchParams = parseBatchParams(body, endpoints);
      let input;
      try {
        input = await files.get(owner, params.inputFileId);
      } catch (error) {
        if (error instanceof BatchError && error.code === "not_found") {
          throw new BatchError("invalid_request", `No such File object: ${params.inputFileId}`, { param: "input_file_id" });
        }
        throw error;
      }
      if (input.file.purpose !== "batch") {
        throw new BatchError(
          "invalid_request",
          `The input file ${params.inputFileId} has purpose '${input.file.purpose}', not 'batch'.`,
          { param: "input_file_id" },
        );
      }
      const createdAt = nowSeconds();
      const batch: BatchObject = {
        id: newBatchId(clock.now()),
        object: "batch",
        endpoint: params.endpoint,
        model: null,
        input_file_id: params.inputFileId,
        completion_window: params.completionWindow,
        status: "validating",
        output_file_id: null,
        error_file_id: null,
        metadata: params.metadata,
        errors: null,
        created_at: createdAt,
        in_progress_at: null,
        expires_at: createdAt + params.windowSeconds,
        finalizing_at: null,
        completed_at: null,
        failed_at: null,
        expired_at: null,
        cancelling_at: null,
        cancelled_at: null,
        request_counts: { total: 0, completed: 0, failed: 0 },
        usage: emptyUsage(),
      };
      const record: BatchRecord = {
        batch,
        owner,
        input_digest: { sha256: input.sha256, bytes: input.file.bytes, marks: input.marks },
        input_lines: 0,
        output_expires_after_seconds: params.outputExpiresAfterSeconds,
        planned_output_file_id: null,
        planned_error_file_id: null,
      };
      // The index entry first: a crash between the two leaves an entry without a batch, which
      // recovery drops, never a batch that nobody resumes.
      await storage.documents.put(activeBatchKey(batch.id), { owner });
      const version = await storage.documents.put(batchDocKey(owner, batch.id), record, { ifVersion: 0 });
      const entry = activate(record, version);
      active.set(batch.id, entry);
      scheduleExpiry(entry);
      run(entry);
      return copyBatch(batch);
    },

    async getBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const live = active.get(batchId);
      if (live && live.record.owner === owner) return liveBatchObject(live);
      const doc = await storage.documents.get<BatchRecord>(batchDocKey(owner, batchId));
      if (!doc) throw notFound(batchId);
      return doc.value.batch;
    },

    async listBatches(owner, { after, limit = 20 }) {
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new BatchError("invalid_request", "'limit' must be an integer between 1 and 100.", { param: "limit" });
      }
      if (after !== undefined && !isBatchId(after)) {
        throw new BatchError("invalid_request", `'after' is not a batch id: ${JSON.stringify(after)}.`, { param: "after" });
      }
      const prefix = batchDocPrefix(owner);
      const page = await storage.documents.list(prefix, {
        reverse: true,
        limit,
        after: after === undefined ? undefined : prefix + after,
      });
      // The page's documents are read at once: one after another, a page cost a read's latency a hundred times.
      const batches = await Promise.all(page.keys.map(async (key) => {
        const batchId = key.slice(prefix.length);
        const live = active.get(batchId);
        if (live && live.record.owner === owner) return liveBatchObject(live);
        return (await storage.documents.get<BatchRecord>(key))?.value.batch ?? null;
      }));
      return { data: batches.filter((batch) => batch !== null), has_more: page.more };
    },

    async cancelBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const batch = active.get(batchId);
      if (!batch || batch.record.owner !== owner) {
        const doc = await storage.documents.get<BatchRecord>(batchDocKey(owner, batchId));
        if (!doc) throw notFound(batchId);
        throw new BatchError("conflict", `Cannot cancel a batch with status '${doc.value.batch.status}'.`);
      }
      const status = batch.record.batch.status;
      if (FINAL_STATUSES.has(status)) {
        throw new BatchError("conflict", `Cannot cancel a batch with status '${status}'.`);
      }
      if (status !== "cancelling") {
        // Cancelling wins over an expiry still being processed.
        batch.stop = "cancel";
        batch.stopDispatch.abort();
        setStatus(batch, "cancelling");
        await persist(batch);
        addTimer(batch, cancelGraceMs, () => batch.abortRequests.abort());
      }
      return liveBatchObject(batch);
    },

    isInputOfActiveBatch(fileId) {
      for (const batch of active.values()) if (batch.record.batch.input_file_id === fileId) return true;
      return false;
    },

    async checkpoint() {
      if (!checkpointStore) return null;
      const state = snapshot();
      const fingerprint = JSON.stringify({ ...state, createdAt: 0 });
      if (fingerprint === lastCheckpointState) return null;
      const sequence = await checkpointStore.save(state);
      lastCheckpointState = fingerprint;
      return sequence;
    },

    async close() {
      if (closing.signal.aborted) return;
      ready = false;
      // Stop feeding new lines at once; requests in flight get the grace period.
      closing.abort();
      const grace = clock.setTimeout(() => abandoning.abort(), shutdownGraceMs);
      await Promise.allSettled([...runs, ...housekeeping]);
      clock.clearTimeout(grace);
      dispatcher.close();
      await offThreadScanner?.close();
      for (const batch of active.values()) for (const timer of batch.timers) clock.clearTimeout(timer);
      if (checkpointStore) {
        lastCheckpointState = "";
        // A last checkpoint only shortens the next start: without it, recovery scans the logs.
        await engine.checkpoint().catch((error) => logger.error(`last checkpoint failed: ${(error as Error).message}`));
      }
    },
  };
  return engine;
}
