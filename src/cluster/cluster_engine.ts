/**
 * A batch engine that is one node of a cluster: any number of them on one
 * PostgreSQL database share every batch's work in slices of lines, and any of
 * them answers any API call for any batch.
 *
 * The batch documents, files and webhook outbox live in the shared storage as
 * on a single node; the work lives in the cluster's tables (`cluster_store.ts`):
 * a batch's validation, its slices and its finalizing are items that nodes
 * claim with leases, and results are recorded fenced by the claim, keyed by
 * line, so that every `custom_id` is in a batch's files once, whatever nodes
 * died or stalled.
 *
 * @module
 */
import { hostname } from "node:os";
import postgres from "postgres";
import type { BatchEngine, BatchEngineOptions, BatchPage } from "../batch/engine/types.ts";
import { setStatus } from "../batch/engine/status.ts";
import { newBatchRecord } from "../batch/engine/batch_intake.ts";
import { createFileService, DEFAULT_FILE_LIMITS } from "../batch/files/file_service.ts";
import { offThreadScannerFor } from "../batch/input/off_thread_scan.ts";
import { DEFAULT_VALIDATION_LIMITS } from "../batch/input/validation.ts";
import { DEFAULT_ENDPOINTS } from "../batch/model/batch_params.ts";
import { BatchError } from "../batch/model/errors.ts";
import { isBatchId } from "../batch/model/ids.ts";
import { type BatchObject, type BatchRecord, copyBatch, emptyUsage, FINAL_STATUSES } from "../batch/model/objects.ts";
import { batchDocKey, batchDocPrefix } from "../batch/model/storage_keys.ts";
import { addUsage } from "../batch/model/usage.ts";
import { dispatcherFor } from "../batch/run/dispatcher.ts";
import { runContextOf } from "../batch/run/line_runner.ts";
import { systemClock } from "../shared/clock.ts";
import { consoleLogger } from "../shared/logger.ts";
import { DEFAULT_SCHEMA } from "../storage/postgres/postgres_storage.ts";
import { changeRecord } from "./batch_docs.ts";
import { channelOf, ClusterStore } from "./cluster_store.ts";
import type { ClusterContext } from "./context.ts";
import { ClusterNode } from "./node.ts";
import { DEFAULT_SLICE_LIMITS, type SliceLimits } from "./slicing.ts";

/** Options for {@link createClusterEngine}: the engine's, without checkpoints (the database is the state). */
export interface ClusterEngineOptions extends Omit<BatchEngineOptions, "checkpoints"> {
  /**
   * The cluster's database: the same URL and schema as the storage (opened
   * with `exclusive: false`, and `idleInTransactionTimeoutMs` at most the lease).
   */
  database: { url: string; schema?: string };
  /** This node's name in the node table (default: host name and a random suffix). */
  nodeId?: string;
  /** How long a claim lasts without a heartbeat (default 15 s); heartbeats come every third of it. */
  leaseSeconds?: number;
  /** How large slices are (default 256 lines or 512 KiB). */
  sliceLimits?: Partial<SliceLimits>;
  /** Most slices this node runs at once (default 2). */
  maxSlices?: number;
  /** How often the node polls the cluster (default 1 s); notifications make most work start sooner. */
  pollMs?: number;
}

/** A node, as the cluster route shows it. */
export interface ClusterNodeView {
  node_id: string;
  host: string;
  pid: number;
  started_at: string;
  last_heartbeat_at: string;
  seconds_since_heartbeat: number;
  /** The items it holds: slices (their lines), validations and finalizings. */
  work: { batch_id: string; kind: string; item: number; first_line: number; lines: number; lease_seconds_left: number }[];
}

/** What `GET /cluster` shows. */
export interface ClusterView {
  object: "cluster";
  /** The node that answered. */
  node_id: string;
  lease_seconds: number;
  nodes: ClusterNodeView[];
  /** Batches not yet ended, with their slices. */
  batches: { batch_id: string; stop: string | null; slices: number; slices_left: number | null }[];
}

/** An engine that is a cluster's node. */
export interface ClusterEngine extends BatchEngine {
  /** This node's name. */
  readonly nodeId: string;
  /** The node table, what each node holds, and the batches in work. */
  describeCluster(): Promise<ClusterView>;
}

/** A node's default name: the host's, and a random suffix (a restarted process is a new node). */
export function defaultNodeId(): string {
  return `${hostname()}-${crypto.randomUUID().slice(0, 6)}`;
}

/** The default lease. */
export const DEFAULT_LEASE_SECONDS = 15;

/**
 * Creates a cluster node's engine. Call `start()` to join the cluster.
 *
 * @example
 * ```ts
 * const url = "postgres://batchspool@db/batchspool";
 * const storage = await createPostgresStorage({ url, exclusive: false });
 * const engine = createClusterEngine({ storage, database: { url }, target: createHttpTarget({ baseUrl }) });
 * await engine.start();
 * ```
 */
export function createClusterEngine(options: ClusterEngineOptions): ClusterEngine {
  const { storage, target } = options;
  const logger = options.logger ?? consoleLogger;
  const clock = options.clock ?? systemClock;
  const endpoints = options.endpoints ?? DEFAULT_ENDPOINTS;
  const nodeId = options.nodeId ?? defaultNodeId();
  const leaseSeconds = options.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
  const schema = options.database.schema ?? DEFAULT_SCHEMA;
  const closing = new AbortController();
  const abandoning = new AbortController();
  const sql = postgres(options.database.url, {
    max: 4,
    onnotice: () => {},
    connection: {
      search_path: `"${schema}"`,
      application_name: `batchspool-node ${nodeId}`.slice(0, 63),
      // A node paused inside a transaction (SIGSTOP, a frozen VM) would hold its row locks, the batch's among
      // them, and stall every node: past its lease, the database ends its session and frees them.
      idle_in_transaction_session_timeout: leaseSeconds * 1000,
    },
  });
  const store = new ClusterStore(sql, nodeId, leaseSeconds, channelOf(schema));
  const dispatcher = dispatcherFor(options, clock);
  const offThreadScanner = offThreadScannerFor(options.scanUploadsOffThread, logger);
  const validationLimits = { ...DEFAULT_VALIDATION_LIMITS, ...options.validation };
  const files = createFileService(storage, {
    limits: { ...DEFAULT_FILE_LIMITS, ...options.fileLimits },
    validation: validationLimits,
    clock,
    // Called only once the node below exists (a file is deleted through the API).
    isInUse: (fileId) => node.inputsInUse.has(fileId),
    offThreadScanner,
    logger,
  });
  const context: ClusterContext = {
    store,
    storage,
    files,
    clock,
    logger,
    run: runContextOf(options, { storage, target, dispatcher, stopping: closing.signal, abandon: abandoning.signal, logger, clock }),
    validationLimits,
    sliceLimits: { ...DEFAULT_SLICE_LIMITS, ...options.sliceLimits },
    cancelGraceMs: options.cancelGraceMs ?? 30_000,
    webhooks: options.webhooks,
  };
  const node = new ClusterNode(context, {
    maxSlices: options.maxSlices ?? 2,
    pollMs: options.pollMs ?? 1_000,
    retryMs: options.stepRetry?.baseMs ?? 2_000,
    dispatcher,
  });
  let ready = false;

  const notFound = (batchId: string) => new BatchError("not_found", `No such Batch object: ${batchId}`, { param: "id" });

  /** The batch object with its counts so far, when its lines are running. */
  const withLiveCounts = async (record: BatchRecord): Promise<BatchObject> => {
    const batch = copyBatch(record.batch);
    if (FINAL_STATUSES.has(batch.status) || batch.in_progress_at === null) return batch;
    const live = await store.liveCounts(batch.id);
    if (live) {
      batch.request_counts = { total: batch.request_counts.total, completed: live.completed, failed: live.failed };
      const usage = emptyUsage();
      for (const sliceUsage of live.usages) addUsage(usage, sliceUsage);
      batch.usage = usage;
    }
    return batch;
  };

  const readOwned = async (owner: string, batchId: string): Promise<BatchRecord | null> =>
    (await storage.documents.get<BatchRecord>(batchDocKey(owner, batchId)))?.value ?? null;

  const engine: ClusterEngine = {
    files,
    target,
    nodeId,
    get ready() {
      return ready;
    },

    async start() {
      await node.start();
      ready = true;
      logger.info(`node ${nodeId} joined the cluster (lease ${leaseSeconds} s)`);
    },

    async createBatch(owner, body) {
      if (!ready || closing.signal.aborted) throw new BatchError("unavailable", "The server is not ready; try again.");
      const record = await newBatchRecord(context, endpoints, owner, body);
      const b = record.batch;
      // The cluster's row first: a document without it would never run; a row without its document is dropped.
      await store.addBatch(b.id, owner, b.input_file_id, b.expires_at);
      node.inputsInUse.add(b.input_file_id);
      await storage.documents.put(batchDocKey(owner, b.id), record, { ifVersion: 0 });
      await store.notifyWork();
      return copyBatch(b);
    },

    async getBatch(owner, batchId) {
      if (!isBatchId(batchId)) throw notFound(batchId);
      const record = await readOwned(owner, batchId);
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
      const prefix = batchDocPrefix(owner);
      const page = await storage.documents.list(prefix, { reverse: true, limit, after: after === undefined ? undefined : prefix + after });
      const batches = await Promise.all(page.keys.map(async (key) => {
        const record = await readOwned(owner, key.slice(prefix.length));
        return record ? withLiveCounts(record) : null;
      }));
      return { data: batches.filter((batch) => batch !== null), has_more: page.more };
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
      // Every node stops sending its lines at once (NOTIFY; the poll if a notification is missed).
      await store.stopBatch(batchId, "cancel");
      return withLiveCounts(record);
    },

    isInputOfActiveBatch: (fileId) => node.inputsInUse.has(fileId),

    stats() {
      const { batches, linesWaiting } = node.stats;
      return { batches, linesWaiting: Math.max(0, linesWaiting - dispatcher.inFlight), requestsInFlight: dispatcher.inFlight };
    },

    checkpoint: () => Promise.resolve(null),

    async describeCluster() {
      const [nodes, items, batches] = await Promise.all([store.nodes(), store.heldItems(), store.batchesInWork()]);
      return {
        object: "cluster",
        node_id: nodeId,
        lease_seconds: leaseSeconds,
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
      };
    },

    async close() {
      if (closing.signal.aborted) return;
      ready = false;
      closing.abort();
      await node.close(options.shutdownGraceMs ?? 5_000, abandoning);
      dispatcher.close();
      await offThreadScanner?.close();
      await sql.end({ timeout: 5 });
    },
  };
  return engine;
}
