/**
 * The batch engine: creates, runs, cancels, expires, finalizes and recovers
 * batches on top of a storage adapter and a target. This module wires the
 * parts and answers the public API; each part has its own module:
 *
 * - `lifecycle.ts`: what happens to a batch, step by step (validate, run,
 *   expire, cancel, fail, finalize); `status.ts`: its states and timestamps;
 * - `supervisor.ts`: runs a batch's steps and decides what a failed step means;
 * - `batch_store.ts`: the batch document and the index of unfinished batches;
 * - `timers.ts`: a batch's window and cancel grace;
 * - `recovery.ts` and `checkpoints.ts`: resuming after a restart;
 * - `result_files.ts`: a finished batch's logs recorded as its files.
 *
 * Crash safety: the batch document is replaced atomically on every
 * transition; results go to append-only logs, group-committed. A request in
 * flight at a crash is sent again (at-least-once toward the target), but its
 * result is written exactly once.
 *
 * @module
 */
import { systemClock } from "../../shared/clock.ts";
import { consoleLogger } from "../../shared/logger.ts";
import { createFileService, DEFAULT_FILE_LIMITS } from "../files/file_service.ts";
import { offThreadScannerFor } from "../input/off_thread_scan.ts";
import { DEFAULT_VALIDATION_LIMITS } from "../input/validation.ts";
import { DEFAULT_ENDPOINTS } from "../model/batch_params.ts";
import { BatchError } from "../model/errors.ts";
import { isBatchId } from "../model/ids.ts";
import { type BatchStatus, copyBatch } from "../model/objects.ts";
import { batchDocPrefix } from "../model/storage_keys.ts";
import { type ActiveBatch, liveBatchObject } from "../run/active_batch.ts";
import type { BackoffPolicy } from "../run/backoff.ts";
import { dispatcherFor } from "../run/dispatcher.ts";
import { runContextOf } from "../run/line_runner.ts";
import { readBatch, storeNewBatch } from "./batch_store.ts";
import { CheckpointStore, snapshotOf } from "./checkpoints.ts";
import { type EngineContext, isInputOfActiveBatch } from "./context.ts";
import { Housekeeping } from "./housekeeping.ts";
import { cancel } from "./lifecycle.ts";
import { newBatchRecord } from "./batch_intake.ts";
import { recoverBatches } from "./recovery.ts";
import { superviseBatch } from "./supervisor.ts";
import { scheduleExpiry } from "./timers.ts";
import type { BatchEngine, BatchEngineOptions, BatchPage, EngineObserver, EngineStats } from "./types.ts";

export type { BatchEngine, BatchEngineOptions, BatchPage, EngineObserver, EngineStats };

/** The default delays before a failed step is tried again. */
const DEFAULT_STEP_RETRY: BackoffPolicy = { baseMs: 2_000, maxMs: 60_000 };

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
  const { storage, target } = options;
  const logger = options.logger ?? consoleLogger;
  const clock = options.clock ?? systemClock;
  const endpoints = options.endpoints ?? DEFAULT_ENDPOINTS;
  const validationLimits = { ...DEFAULT_VALIDATION_LIMITS, ...options.validation };
  const shutdownGraceMs = options.shutdownGraceMs ?? 5_000;
  const nodeId = options.nodeId ?? `node-${crypto.randomUUID().slice(0, 8)}`;
  /** Aborted on close: no new line is dispatched. */
  const closing = new AbortController();
  /** Aborted when the shutdown grace period is over: requests in flight are abandoned. */
  const abandoning = new AbortController();
  const runs = new Set<Promise<void>>();
  const housekeeping = new Housekeeping(clock, closing.signal);
  const checkpointOptions = options.checkpoints === false ? null : options.checkpoints ?? {};
  const checkpointStore = checkpointOptions ? new CheckpointStore(storage, { keep: checkpointOptions.keep ?? 3, logger }) : null;
  let lastCheckpointState = "";
  let ready = false;

  const dispatcher = dispatcherFor(options, clock);
  const offThreadScanner = offThreadScannerFor(options.scanUploadsOffThread, logger);
  const active = new Map<string, ActiveBatch>();
  const context: EngineContext = {
    storage,
    files: createFileService(storage, {
      limits: { ...DEFAULT_FILE_LIMITS, ...options.fileLimits },
      validation: validationLimits,
      clock,
      isInUse: (fileId) => isInputOfActiveBatch(context, fileId),
      offThreadScanner,
      logger,
    }),
    clock,
    logger,
    run: runContextOf(options, { storage, target, dispatcher, stopping: closing.signal, abandon: abandoning.signal, logger, clock }),
    active,
    closing: closing.signal,
    validationLimits,
    cancelGraceMs: options.cancelGraceMs ?? 30_000,
    stepRetry: options.stepRetry ?? DEFAULT_STEP_RETRY,
    webhooks: options.webhooks,
  };

  /** Starts supervising a batch's steps, with its window's timer. */
  const run = (batch: ActiveBatch) => {
    scheduleExpiry(context, batch);
    if (batch.stop) batch.stopDispatch.abort();
    const promise = superviseBatch(context, batch);
    runs.add(promise);
    promise.finally(() => runs.delete(promise));
  };

  const notFound = (batchId: string) => new BatchError("not_found", `No such Batch object: ${batchId}`, { param: "id" });

  const engine: BatchEngine = {
    files: context.files,
    target,
    get ready() {
      return ready;
    },

    async start() {
      const resumed = await recoverBatches(context, checkpointStore ? await checkpointStore.loadLatest() : null);
      ready = true;
      for (const batch of resumed) run(batch);
      if (resumed.length) logger.info(`resumed ${resumed.length} unfinished batch(es)`);
      if (checkpointStore) {
        housekeeping.repeat(checkpointOptions?.intervalMs ?? 5_000, () =>
          engine.checkpoint().then(() => {}, (error) => logger.error(`checkpoint failed: ${(error as Error).message}`)));
      }
      // Expired files are swept at start (in the background) and every hour.
      housekeeping.repeat(3_600_000, () =>
        context.files.sweepExpired().then(() => {}, (error) => logger.error(`expired-file sweep failed: ${(error as Error).message}`)), true);
    },

    async createBatch(owner, body) {
      if (!ready || closing.signal.aborted) throw new BatchError("unavailable", "The server is not ready; try again.");
      const record = await newBatchRecord(context, endpoints, owner, body);
      run(await storeNewBatch(context, record));
      return copyBatch(record.batch);
    },

    async getBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const live = active.get(batchId);
      if (live && live.record.owner === owner) return liveBatchObject(live);
      const record = await readBatch(context, owner, batchId);
      if (!record) throw notFound(batchId);
      return record.batch;
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
        return (await readBatch(context, owner, batchId))?.batch ?? null;
      }));
      return { data: batches.filter((batch) => batch !== null), has_more: page.more };
    },

    async cancelBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const batch = active.get(batchId);
      if (!batch || batch.record.owner !== owner) {
        const record = await readBatch(context, owner, batchId);
        if (!record) throw notFound(batchId);
        throw new BatchError("conflict", `Cannot cancel a batch with status '${record.batch.status}'.`);
      }
      return await cancel(context, batch);
    },

    isInputOfActiveBatch: (fileId) => isInputOfActiveBatch(context, fileId),

    stats() {
      const batches: Partial<Record<BatchStatus, number>> = {};
      let unfinished = 0;
      for (const batch of active.values()) {
        const { status, request_counts } = batch.record.batch;
        batches[status] = (batches[status] ?? 0) + 1;
        const progress = batch.progress;
        if (progress && status !== "cancelling") unfinished += request_counts.total - progress.completed - progress.failed;
      }
      return { batches, linesWaiting: Math.max(0, unfinished - dispatcher.inFlight), requestsInFlight: dispatcher.inFlight };
    },

    async checkpoint() {
      if (!checkpointStore) return null;
      const state = snapshotOf(active, nodeId, clock.now());
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
      await Promise.allSettled([...runs, housekeeping.settled()]);
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

