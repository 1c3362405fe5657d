/**
 * The PostgreSQL work ledger: any number of nodes on one schema share every
 * batch's work, each node claiming items with leases (`cluster_store.ts`).
 *
 * A node's own work (heartbeats, claims, fenced writes) has connections of its
 * own, apart from those that answer the API's reads, so a storm of reads
 * cannot make a node miss its heartbeats and lose its claims.
 *
 * Results stay in the results table after a batch ends: its output and error
 * files are made of them (`result_files.ts`), so ending a batch costs a few
 * statements whatever its size.
 *
 * @module
 */
import postgres from "postgres";
import { type ProcessIdentity, provablyGone, thisProcess } from "../../../runtime/process_identity.ts";
import type { Logger } from "../../../shared/logger.ts";
import { sha256Hex } from "../../../integrity/sha256.ts";
import { type BatchUsage, emptyUsage } from "../../../batch/model/objects.ts";
import { errorLogKey, outputLogKey } from "../../../batch/model/storage_keys.ts";
import { addUsage } from "../../../batch/model/usage.ts";
import type { Clock } from "../../../shared/clock.ts";
import type { EngineObserver } from "../../lines/engine_observer.ts";
import type { BatchTotals, HeldItem, LedgerSignal, ResultFileContent, WorkLedger } from "../ledger.ts";
import { ClusterReads } from "./cluster_reads.ts";
import { type ClaimedItem, ClusterStore } from "./cluster_store.ts";
import { recordsSoFar, resultFileStore } from "./result_files.ts";
import { createSliceWriter } from "./slice_writer.ts";

/** Options for {@link createPostgresLedger}. */
export interface PostgresLedgerOptions {
  /** The database and schema of the storage the engine runs on. */
  url: string;
  schema: string;
  nodeId: string;
  /** How long a claim lasts without a heartbeat, in seconds. */
  leaseSeconds: number;
  /** How large slices are. */
  sliceLimits: { maxLines: number; maxBytes: number };
  clock: Clock;
  logger: Logger;
  observer: EngineObserver;
  /** Owners' weights (default 1), for the order of claims between owners. */
  ownerWeights?: ReadonlyMap<string, number>;
}

/** The default lease. */
export const DEFAULT_LEASE_SECONDS = 15;

/** A node silent this many lease times is dropped from the node table (its items lapsed long before). */
const FORGET_AFTER_LEASES = 20;

/**
 * The nodes running in this process: they share its pid, so a node row with
 * this process's pid is a former life of it only when it is none of these.
 */
const nodesOfThisProcess = new Set<string>();

/**
 * The channel the ledger's notifications travel on (one per schema), within
 * PostgreSQL's 63 bytes for an identifier however long the schema's name.
 */
export function channelOf(schema: string): string {
  const plain = `batchspool_${schema}`;
  return plain.length <= 63 ? plain : `batchspool_${schema.slice(0, 30)}_${sha256Hex(schema).slice(0, 16)}`;
}

/** Sums slices' usages. */
function usageOf(usages: readonly unknown[]): BatchUsage {
  const usage = emptyUsage();
  for (const sliceUsage of usages) addUsage(usage, sliceUsage);
  return usage;
}


/** Creates the PostgreSQL ledger of one node. */
export function createPostgresLedger(options: PostgresLedgerOptions): WorkLedger {
  const { nodeId, leaseSeconds, schema, logger } = options;
  const connection = (purpose: string) => ({
    search_path: `"${schema}"`,
    application_name: `batchspool-node ${nodeId} ${purpose}`.slice(0, 63),
    // A node paused inside a transaction (SIGSTOP, a frozen VM) would hold its row locks, the batch's among
    // them, and stall every node: past its lease, the database ends its session and frees them.
    idle_in_transaction_session_timeout: leaseSeconds * 1000,
  });
  const work = postgres(options.url, { max: 4, onnotice: () => {}, connection: connection("work") });
  const reads = postgres(options.url, { max: 4, onnotice: () => {}, connection: connection("reads") });
  const store = new ClusterStore(work, nodeId, leaseSeconds, channelOf(schema));
  store.onRejoin = () => logger.warn(`node ${nodeId} was silent so long that the others dropped it: it joined again`);
  const api = new ClusterReads(reads);
  /** The counts each held slice had when it was claimed, by claim. */
  const claimedCounts = new Map<string, ClaimedItem>();
  const claimKey = (held: HeldItem) => `${held.batchId}/${held.item}/${held.token}`;
  const weights = JSON.stringify(Object.fromEntries(options.ownerWeights ?? []));
  let me: ProcessIdentity | null = null;
  let unlisten: (() => Promise<void>) | null = null;

  const ledger: WorkLedger = {
    nodeId,
    sliceLimits: options.sliceLimits,
    defaultMaxSlices: 2,
    heartbeatMs: Math.max(250, (leaseSeconds * 1000) / 3),
    leaseSeconds,
    resultFiles: resultFileStore(api, work),

    async start(onSignal: (signal: LedgerSignal) => void) {
      me = await thisProcess();
      nodesOfThisProcess.add(nodeId);
      await store.registerNode(me);
      const listener = await work.listen(store.channel, (payload) => {
        if (payload === "work") onSignal({ kind: "work" });
        else if (payload.startsWith("stop:")) onSignal({ kind: "stop", batchId: payload.slice(5) });
      });
      unlisten = () => listener.unlisten();
    },

    async leave() {
      nodesOfThisProcess.delete(nodeId);
      await unlisten?.().catch(() => {});
      await store.leave().catch((error) => logger.error(`could not hand back this node's work: ${(error as Error).message}`));
      await Promise.all([work.end({ timeout: 5 }), reads.end({ timeout: 5 })]);
    },

    addBatch: (record) =>
      store.addBatch(record.batch.id, record.owner, record.batch.input_file_id, record.batch.expires_at, record.batch.priority ?? 0),
    notifyWork: () => store.notifyWork(),
    stopBatch: (batchId, reason, failure) => store.stopBatch(batchId, reason, failure ?? null),
    stopOf: (batchId) => store.stopOf(batchId),
    stopsOf: (batchIds) => store.stopsOf(batchIds),
    pauseBatch: (batchId, paused) => store.pauseBatch(batchId, paused),
    expireDue: () => store.expireDue(),
    isInputInUse: (fileId) => api.isInputInUse(fileId),

    async liveTotals(batchId): Promise<BatchTotals | null> {
      const live = await api.liveCounts(batchId);
      return live && { completed: live.completed, failed: live.failed, usage: usageOf(live.usages) };
    },

    async recordedSince(batchId, after) {
      // A position is a transaction number: every group recorded by one before it has been given out.
      const from = after === null ? 0 : /^t\d{1,18}$/.test(after) ? Number(after.slice(1)) : null;
      if (from === null) return null;
      const { next, groups } = await api.recordedSince(batchId, from);
      return { records: recordsSoFar(groups, batchId), next: `t${next}` };
    },

    async totals(batchId): Promise<BatchTotals> {
      const sizes = await store.resultSizes(batchId);
      return { completed: sizes.output.rows, failed: sizes.errors.rows, usage: usageOf(await store.sliceUsages(batchId)) };
    },

    async claim(kinds, how) {
      const claimed = await store.claim(kinds, weights, how);
      if (!claimed) return null;
      if (claimed.kind === "slice") claimedCounts.set(claimKey(claimed), claimed);
      const { completed: _, failed: __, usage: ___, ...item } = claimed;
      return item;
    },

    heartbeat: (held) => store.heartbeat(held),
    release: (held) => store.release(held),
    holds: (held) => store.holds(held),
    addSlices: (held, slices, final = true) => store.addSlices(held, slices, final),
    slicedSoFar: (batchId) => store.slicedSoFar(batchId),

    async finishSlice(held) {
      claimedCounts.delete(claimKey(held));
      return await store.finishSlice(held);
    },

    removeBatch: (batchId) => store.removeBatch(batchId),

    async resultSink(item) {
      const held = { batchId: item.batchId, item: item.item, token: item.token };
      const claimed = claimedCounts.get(claimKey(held));
      const counts = item.kind !== "slice"
        ? null
        : { completed: claimed?.completed ?? 0, failed: claimed?.failed ?? 0, usage: (claimed?.usage ?? emptyUsage()) as BatchUsage };
      return {
        writer: createSliceWriter(store, held, counts, options.clock, options.observer),
        async finishedIn(first, count) {
          const finished = new Set(await store.finishedLines(item.batchId, first, count));
          return (line) => finished.has(line);
        },
      };
    },

    async resultFileContents(held) {
      const sizes = await store.resultSizes(held.batchId);
      const content = (kind: "output" | "errors"): ResultFileContent | null =>
        sizes[kind].rows === 0 ? null : {
          bytes: sizes[kind].bytes,
          content: { store: "results", key: kind === "output" ? outputLogKey(held.batchId) : errorLogKey(held.batchId) },
        };
      return { output: content("output"), errors: content("errors") };
    },

    async liveNodes() {
      let count = 1;
      let first = nodeId;
      for (const node of await store.nodes()) {
        if (node.nodeId === nodeId) continue;
        const gone = me && !nodesOfThisProcess.has(node.nodeId) && provablyGone(node, me);
        if (gone || node.silentSeconds > FORGET_AFTER_LEASES * leaseSeconds) {
          logger.info(`node ${node.nodeId} is gone: its work is free to claim`);
          await store.forgetNode(node.nodeId);
        } else if (node.silentSeconds < leaseSeconds) {
          count++;
          if (node.nodeId < first) first = node.nodeId;
        }
      }
      return { count, first };
    },

    addedSecondsAgo: (batchId) => store.batchAge(batchId),

    nodes: () => api.nodes(),
    heldItems: () => api.heldItems(),
    batchesInWork: () => api.batchesInWork(),
    overview: () => api.overview(),
    checkpoint: () => Promise.resolve(null),
  };
  return ledger;
}
