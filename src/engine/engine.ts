/**
 * The batch engine: creates, runs, cancels, expires, finalizes and recovers
 * batches on top of a storage adapter and a target. A single node is a
 * cluster of one: the engine is one node (`node.ts`) and its steps
 * (`validate_step.ts`, `slice_step.ts`, `finalize_step.ts`), over a work
 * ledger (`ledger/`) chosen by the storage:
 *
 * - memory or a data directory: the local ledger (this node is the only one);
 * - PostgreSQL: the PostgreSQL ledger (this node is one of its schema's, with
 *   every other engine on that schema, in this process or elsewhere).
 *
 * This module wires the parts and answers the public API; any node answers
 * any call for any batch.
 *
 * Crash safety: the batch document is replaced atomically (compare-and-swap)
 * on every transition; results are recorded before they count, fenced by the
 * claim of the item that produced them. A request in flight at a crash is
 * sent again (at-least-once toward the target), but its result is recorded
 * exactly once.
 *
 * @module
 */
import { systemClock } from "../shared/clock.ts";
import { consoleLogger } from "../shared/logger.ts";
import { isPostgresStorage } from "../storage/postgres/postgres_storage.ts";
import { createFileService, DEFAULT_FILE_LIMITS } from "../batch/files/file_service.ts";
import { offThreadScannerFor } from "../batch/input/off_thread_scan.ts";
import { DEFAULT_VALIDATION_LIMITS } from "../batch/input/validation.ts";
import { DEFAULT_ENDPOINTS } from "../batch/model/batch_params.ts";
import { BatchError } from "../batch/model/errors.ts";
import { IdempotencyKeys } from "../batch/model/idempotency.ts";
import { isBatchId } from "../batch/model/ids.ts";
import { type BatchObject, type BatchRecord, copyBatch, FINAL_STATUSES } from "../batch/model/objects.ts";
import { batchDocKey } from "../batch/model/storage_keys.ts";
import { changeRecord, listBatchRecords, readRecord } from "./batch_docs.ts";
import { newBatchRecord } from "./batch_intake.ts";
import type { EngineContext } from "./context.ts";
import { Housekeeping } from "./housekeeping.ts";
import { defaultNodeId, type WorkLedger } from "./ledger/ledger.ts";
import { createLocalLedger } from "./ledger/local/local_ledger.ts";
import { createPostgresLedger, DEFAULT_LEASE_SECONDS } from "./ledger/postgres/postgres_ledger.ts";
import type { BackoffPolicy } from "./lines/backoff.ts";
import { dispatcherFor } from "./lines/dispatcher.ts";
import { NO_OBSERVER } from "./lines/engine_observer.ts";
import { runContextOf } from "./lines/line_runner.ts";
import { upstreamViews } from "./lines/upstream_views.ts";
import { EngineNode } from "./node.ts";
import { DEFAULT_SLICE_LIMITS } from "./slicing.ts";
import { setStatus } from "./status.ts";
import type { BatchEngine, BatchEngineOptions, BatchPage, BatchView, ClusterView, EngineObserver, EngineStats } from "./types.ts";

export type { BatchEngine, BatchEngineOptions, BatchPage, BatchView, ClusterView, EngineObserver, EngineStats };

/** The default delays before a failed step is tried again. */
const DEFAULT_STEP_RETRY: BackoffPolicy = { baseMs: 2_000, maxMs: 60_000 };
/** How often storage's leftovers are looked for (an upload counts as abandoned after ten minutes without a sign of life). */
export const LEFTOVER_SWEEP_MS = 300_000;

/** The ledger the storage calls for. */
function ledgerFor(options: BatchEngineOptions, parts: Pick<EngineContext, "clock" | "logger"> & { nodeId: string }): WorkLedger {
  const { storage } = options;
  const observer = options.observer ?? NO_OBSERVER;
  if (isPostgresStorage(storage)) {
    return createPostgresLedger({
      ...storage.database,
      ...parts,
      observer,
      ownerWeights: options.ownerWeights,
      leaseSeconds: options.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
      sliceLimits: { ...DEFAULT_SLICE_LIMITS, ...options.sliceLimits },
    });
  }
  const checkpoints = options.checkpoints === false ? false : { keep: options.checkpoints?.keep ?? 3 };
  return createLocalLedger({ storage, ...parts, observer, checkpoints, ownerWeights: options.ownerWeights });
}

/**
 * Creates a batch engine: a node of the work its storage holds. Call
 * `start()` before use.
 *
 * @example
 * ```ts
 * const storage = await createFsStorage({ dir: "./batchspool-data" }); // or createPostgresStorage({ url })
 * const engine = createBatchEngine({ storage, target: createMockTarget() });
 * await engine.start();
 * ```
 */
export function createBatchEngine(options: BatchEngineOptions): BatchEngine {
  const { storage, target } = options;
  const logger = options.logger ?? consoleLogger;
  const clock = options.clock ?? storage.clock ?? systemClock;
  const endpoints = options.endpoints ?? DEFAULT_ENDPOINTS;
  const nodeId = options.nodeId ?? defaultNodeId();
  /** Aborted on close: no new line is dispatched. */
  const closing = new AbortController();
  /** Aborted when the shutdown grace period is over: requests in flight are abandoned. */
  const abandoning = new AbortController();
  const housekeeping = new Housekeeping(clock, closing.signal);
  const ledger = ledgerFor(options, { clock, logger, nodeId });
  const dispatcher = dispatcherFor(options, clock, target.upstreamOf?.bind(target));
  const offThreadScanner = offThreadScannerFor(options.scanUploadsOffThread, logger);
  const validationLimits = { ...DEFAULT_VALIDATION_LIMITS, ...options.validation };
  const context: EngineContext = {
    ledger,
    storage,
    files: createFileService(storage, {
      limits: { ...DEFAULT_FILE_LIMITS, ...options.fileLimits },
      validation: validationLimits,
      clock,
      isInUse: (fileId) => ledger.isInputInUse(fileId),
      resultFiles: ledger.resultFiles,
      offThreadScanner,
      logger,
    }),
    clock,
    logger,
    run: runContextOf(options, { target, dispatcher, stopping: closing.signal, abandon: abandoning.signal, logger, clock }),
    validationLimits,
    accepts: target.accepts?.bind(target),
    cancelGraceMs: options.cancelGraceMs ?? 30_000,
    webhooks: options.webhooks,
  };
  const node = new EngineNode(context, {
    maxSlices: options.maxSlices ?? ledger.defaultMaxSlices,
    pollMs: options.pollMs ?? 1_000,
    stepRetry: options.stepRetry ?? DEFAULT_STEP_RETRY,
    dispatcher,
  });
  let ready = false;

  const notFound = (batchId: string) => new BatchError("not_found", `No such Batch object: ${batchId}`, { param: "id" });

  /** The batch object with its results so far, while its lines run. */
  const withLiveCounts = async (record: BatchRecord): Promise<BatchObject> => {
    const batch = copyBatch(record.batch);
    if (FINAL_STATUSES.has(batch.status) || batch.in_progress_at === null) return batch;
    const live = await ledger.liveTotals(batch.id);
    if (live) {
      batch.request_counts = { total: batch.request_counts.total, completed: live.completed, failed: live.failed };
      batch.usage = live.usage;
    }
    return batch;
  };

  /**
   * Pauses or resumes: the document first (what the API shows, and what a
   * local ledger rebuilds from), then the ledger. Both are written every time,
   * so a call repeated after a crash between the two makes them agree.
   */
  const setPaused = async (owner: string, batchId: string, paused: boolean): Promise<BatchObject> => {
    if (!isBatchId(batchId)) throw notFound(batchId);
    const record = await changeRecord(storage, owner, batchId, (current) => {
      const status = current.batch.status;
      if (paused && status !== "validating" && status !== "in_progress") {
        throw new BatchError("conflict", `Cannot pause a batch with status '${status}'.`);
      }
      if (((current.batch.paused_at ?? null) !== null) === paused) return false;
      current.batch.paused_at = paused ? Math.floor(clock.now() / 1000) : null;
      return true;
    });
    if (!record) throw notFound(batchId);
    if (!FINAL_STATUSES.has(record.batch.status)) await ledger.pauseBatch(batchId, paused);
    return withLiveCounts(record);
  };

  const idempotency = new IdempotencyKeys(storage, clock);
  const engine: BatchEngine = {
    files: context.files,
    target,
    idempotency,
    nodeId,
    get ready() {
      return ready;
    },

    async start() {
      await node.start();
      ready = true;
      if (ledger.leaseSeconds !== null) logger.info(`node ${nodeId} joined the cluster (lease ${ledger.leaseSeconds} s)`);
      const checkpointMs = options.checkpoints === false ? null : options.checkpoints?.intervalMs ?? 5_000;
      if (checkpointMs !== null) {
        housekeeping.repeat(checkpointMs, () =>
          engine.checkpoint().then(() => {}, (error) => logger.error(`checkpoint failed: ${(error as Error).message}`)));
      }
      // Expired files are swept at start (in the background) and every hour, by every node (a sweep is idempotent).
      housekeeping.repeat(3_600_000, () =>
        context.files.sweepExpired().then(() => {}, (error) => logger.error(`expired-file sweep failed: ${(error as Error).message}`)), true);
      // Idempotency keys past their 24 hours, likewise.
      housekeeping.repeat(3_600_000, () =>
        idempotency.sweep().then(() => {}, (error) => logger.error(`idempotency-key sweep failed: ${(error as Error).message}`)));
      // What writers that died left behind (on PostgreSQL, uploads of nodes that died mid-upload), by every node.
      const removeLeftovers = storage.removeLeftovers?.bind(storage);
      if (removeLeftovers) {
        housekeeping.repeat(LEFTOVER_SWEEP_MS, () =>
          removeLeftovers().then(
            (removed) => removed && logger.info(`removed ${removed} upload(s) abandoned by writers that died`),
            (error) => logger.error(`leftover sweep failed: ${(error as Error).message}`),
          ).then(() => {}));
      }
    },

    async createBatch(owner, body, options = {}) {
      if (!ready || closing.signal.aborted) throw new BatchError("unavailable", "The server is not ready; try again.");
      const record = await newBatchRecord(context, endpoints, owner, body);
      if (options.messageBatchRequests !== undefined) {
        record.message_batch = { requests: options.messageBatchRequests, results_before_end: null };
      }
      // The ledger's entry first: a document without one would never run; an entry without its document is dropped.
      await ledger.addBatch(record);
      await storage.documents.put(batchDocKey(owner, record.batch.id), record, { ifVersion: 0 });
      await ledger.notifyWork();
      return copyBatch(record.batch);
    },

    async getBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const record = await readRecord(storage, owner, batchId);
      if (!record) throw notFound(batchId);
      return withLiveCounts(record);
    },

    async listBatches(owner, { after, limit = 20 }): Promise<BatchPage> {
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
        throw new BatchError("invalid_request", "'limit' must be an integer between 1 and 100.", { param: "limit" });
      }
      if (after !== undefined && !isBatchId(after)) {
        throw new BatchError("invalid_request", `'after' is not a batch id: ${JSON.stringify(after)}.`, { param: "after" });
      }
      const page = await listBatchRecords(storage, owner, { after, limit });
      return { data: await Promise.all(page.records.map(withLiveCounts)), has_more: page.more };
    },

    async getBatchView(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const record = await readRecord(storage, owner, batchId);
      if (!record) throw notFound(batchId);
      return { batch: await withLiveCounts(record), messageBatch: record.message_batch ?? null };
    },

    async listBatchViews(owner, { after, before, limit, messageBatches }) {
      for (const [param, id] of [["after", after], ["before", before]] as const) {
        if (id !== undefined && !isBatchId(id)) throw new BatchError("invalid_request", `'${param}' is not a batch id: ${JSON.stringify(id)}.`, { param });
      }
      const keep = (record: BatchRecord) => (record.message_batch !== undefined) === messageBatches;
      const page = await listBatchRecords(storage, owner, { after, before, limit, keep });
      const data = await Promise.all(page.records.map(async (record) => ({
        batch: await withLiveCounts(record),
        messageBatch: record.message_batch ?? null,
      })));
      return { data, has_more: page.more };
    },

    async deleteBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const record = await readRecord(storage, owner, batchId);
      if (!record) throw notFound(batchId);
      if (!FINAL_STATUSES.has(record.batch.status)) {
        throw new BatchError("conflict", `Batch ${batchId} cannot be deleted before it ends (it is ${record.batch.status}).`);
      }
      // Its files first, its record last: a delete that stops half way can be done again.
      const files = [record.batch.output_file_id, record.batch.error_file_id, ...(record.message_batch ? [record.batch.input_file_id] : [])];
      for (const fileId of files) {
        if (fileId === null) continue;
        await context.files.delete(owner, fileId).catch((error) => {
          if (!(error instanceof BatchError && error.code === "not_found")) throw error;
        });
      }
      await storage.documents.delete(batchDocKey(owner, batchId));
    },

    async cancelBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const record = await changeRecord(storage, owner, batchId, (current) => {
        const status = current.batch.status;
        if (FINAL_STATUSES.has(status)) throw new BatchError("conflict", `Cannot cancel a batch with status '${status}'.`);
        if (status === "cancelling") return false;
        setStatus(current.batch, "cancelling", Math.floor(clock.now() / 1000));
        return true;
      });
      if (!record) throw notFound(batchId);
      // Every node stops sending its lines at once (the ledger's signal; the poll if one is missed).
      await ledger.stopBatch(batchId, "cancel");
      return withLiveCounts(record);
    },

    async resultsSoFar(owner, batchId, after) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const record = await readRecord(storage, owner, batchId);
      if (!record) throw notFound(batchId);
      // Ended before the read: every result is in what it reads.
      const complete = FINAL_STATUSES.has(record.batch.status);
      const found = await ledger.recordedSince(batchId, after ?? null);
      if (!found) throw new BatchError("invalid_request", `'after' is not a position of this batch's results: ${JSON.stringify(after)}.`, { param: "after" });
      return { ...found, complete };
    },

    pauseBatch: (owner, batchId) => setPaused(owner, batchId, true),
    resumeBatch: (owner, batchId) => setPaused(owner, batchId, false),

    isInputOfActiveBatch: (fileId) => ledger.isInputInUse(fileId),

    stats() {
      const { batches, linesWaiting } = node.stats;
      return {
        batches,
        linesWaiting: Math.max(0, linesWaiting - dispatcher.inFlight),
        requestsInFlight: dispatcher.inFlight,
        upstreams: upstreamViews(dispatcher, target),
      };
    },

    async freshStats() {
      await node.freshStats();
      return engine.stats();
    },

    checkpoint: () => ledger.checkpoint(),

    async describeCluster(): Promise<ClusterView> {
      const [nodes, items, batches] = await Promise.all([ledger.nodes(), ledger.heldItems(), ledger.batchesInWork()]);
      return {
        object: "cluster",
        node_id: nodeId,
        lease_seconds: ledger.leaseSeconds,
        nodes: nodes.map((n) => ({
          node_id: n.nodeId,
          host: n.host,
          pid: n.pid,
          started_at: n.startedAt,
          last_heartbeat_at: n.heartbeatAt,
          seconds_since_heartbeat: Math.round(n.silentSeconds * 10) / 10,
          work: items.filter((i) => i.nodeId === n.nodeId).map((i) => ({
            batch_id: i.batchId,
            kind: i.kind,
            item: i.item,
            first_line: i.firstLine,
            lines: i.lineCount,
            lease_seconds_left: i.leaseSeconds,
          })),
        })),
        batches: batches.map((b) => ({ batch_id: b.batchId, stop: b.stop, slices: b.slices, slices_left: b.slicesLeft })),
        upstreams: upstreamViews(dispatcher, target),
      };
    },

    async close() {
      if (closing.signal.aborted) return;
      ready = false;
      // Stop feeding new lines at once; requests in flight get the grace period.
      closing.abort();
      await housekeeping.settled();
      await node.close(options.shutdownGraceMs ?? 5_000, abandoning);
      dispatcher.close();
      await offThreadScanner?.close();
      // A last checkpoint only shortens the next start: without it, the local ledger scans the logs.
      await ledger.checkpoint().catch((error) => logger.error(`last checkpoint failed: ${(error as Error).message}`));
    },
  };
  return engine;
}
