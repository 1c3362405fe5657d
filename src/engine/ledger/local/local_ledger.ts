/**
 * The local work ledger: one node, on any storage (memory, a data directory).
 *
 * Items live in memory: a batch's validation, one slice that is its whole
 * input (read once, each stretch checked against its upload's digest marks),
 * and its finalizing. What must outlive the process is in storage: the index
 * of batches that have not ended (`active/<id>`, with a batch's stop), their
 * documents, and their results in two logs per batch (group-committed, then
 * recorded as the batch's result files as they are). A restart rebuilds the
 * items from those (`recovery.ts`), a checkpoint saving it the logs' scan.
 *
 * There is no other node to fence off; a frozen former process holding the
 * same data directory is fenced off by the storage itself (see
 * `src/storage/fs/fs_storage.ts`).
 *
 * @module
 */
import { thisProcess } from "../../../runtime/process_identity.ts";
import type { Clock } from "../../../shared/clock.ts";
import type { Logger } from "../../../shared/logger.ts";
import type { Storage } from "../../../storage/types.ts";
import { type BatchRecord, copyUsage, emptyUsage } from "../../../batch/model/objects.ts";
import { activeBatchKey, errorLogKey, outputLogKey } from "../../../batch/model/storage_keys.ts";
import type { EngineObserver } from "../../lines/engine_observer.ts";
import {
  type BatchStop,
  type BatchTotals,
  FINALIZE_ITEM,
  type HeldItem,
  type ClaimOptions,
  type Halt,
  type LedgerSignal,
  type NodeRow,
  type ResultFileContent,
  type ResultSink,
  type SliceSpec,
  VALIDATE_ITEM,
  type WorkKind,
  type WorkLedger,
} from "../ledger.ts";
import { BatchProgress } from "./batch_progress.ts";
import { CheckpointStore, snapshotOf } from "./checkpoints.ts";
import { type ActiveEntry, absorbLogTails, recoverBatches } from "./recovery.ts";
import { createResultWriter, type LogResultWriter } from "./result_writer.ts";
import { logStretches } from "./log_stretches.ts";
import { hashLog } from "./running_log_digest.ts";
import { chooseSlice } from "./slice_choice.ts";
import { batchesInWorkOf, heldItemsOf, overviewOf, statusOf } from "./local_views.ts";

/** Options for {@link createLocalLedger}. */
export interface LocalLedgerOptions {
  storage: Storage;
  clock: Clock;
  logger: Logger;
  observer: EngineObserver;
  nodeId: string;
  /** Checkpoints kept (none: `false`). */
  checkpoints: { keep: number } | false;
  /** Owners' weights (default 1), for the order of claims between owners. */
  ownerWeights?: ReadonlyMap<string, number>;
}

export interface LocalItem extends SliceSpec {
  kind: WorkKind;
  item: number;
  token: number;
  held: boolean;
  done: boolean;
}

/** A batch that has not ended, as the ledger keeps it. */
export interface LocalBatch {
  id: string;
  entry: ActiveEntry;
  inputFileId: string;
  /** When its completion window ends, in seconds. */
  expiresAt: number;
  /** When it was added (or found at start), on the clock. */
  addedAt: number;
  /** Its priority (higher goes first). */
  priority: number;
  /** Whether it is paused (as its document says). */
  paused: boolean;
  items: LocalItem[];
  /** What its logs hold, once its lines run. */
  progress: BatchProgress | null;
  /** Writes its results to its logs (replaced after a write failed). */
  writer: LogResultWriter | null;
}

const NO_LINES: SliceSpec = { firstLine: 0, lineCount: 0, byteStart: 0, byteEnd: 0, sha256: null };
const item = (kind: WorkKind, number: number, spec = NO_LINES): LocalItem => ({ kind, item: number, ...spec, token: 0, held: false, done: false });

/** The slice that is a whole input: its lines checked against the upload's digest marks. */
function wholeInput(record: BatchRecord): SliceSpec {
  return { firstLine: 1, lineCount: record.input_lines, byteStart: 0, byteEnd: record.input_digest.bytes, sha256: null };
}

/** Creates the local ledger. */
export function createLocalLedger(options: LocalLedgerOptions): WorkLedger {
  const { storage, clock, logger, observer, nodeId } = options;
  const batches = new Map<string, LocalBatch>();
  const checkpoints = options.checkpoints ? new CheckpointStore(storage, { keep: options.checkpoints.keep, logger }) : null;
  let lastCheckpoint = "";
  let signal: (signal: LedgerSignal) => void = () => {};
  let startedAt = new Date(clock.now()).toISOString();
  let me: Awaited<ReturnType<typeof thisProcess>> | null = null;

  const held = (ref: HeldItem): LocalItem | null => {
    const found = batches.get(ref.batchId)?.items.find((i) => i.item === ref.item);
    return found && found.held && !found.done && found.token === ref.token ? found : null;
  };

  /** The batch's progress and a writer that works: a writer whose write failed may have left records the progress lacks. */
  const liveWriter = async (batch: LocalBatch, lines: number): Promise<LogResultWriter> => {
    if (!batch.progress) batch.progress = new BatchProgress(lines);
    if (batch.writer?.failed) await absorbLogTails(storage, logger, batch.id, batch.progress);
    if (!batch.writer || batch.writer.failed) batch.writer = createResultWriter(storage, batch.id, batch.progress, clock, observer);
    return batch.writer;
  };

  const totalsOf = (progress: BatchProgress | null): BatchTotals =>
    progress
      ? { completed: progress.completed, failed: progress.failed, usage: copyUsage(progress.usage) }
      : { completed: 0, failed: 0, usage: emptyUsage() };

  const saveEntry = (batch: LocalBatch) => storage.documents.put(activeBatchKey(batch.id), batch.entry);

  const ledger: WorkLedger = {
    nodeId,
    sliceLimits: null,
    defaultMaxSlices: Number.POSITIVE_INFINITY,
    heartbeatMs: null,
    leaseSeconds: null,
    resultFiles: null,

    async start(onSignal) {
      signal = onSignal;
      me = await thisProcess();
      startedAt = new Date(clock.now()).toISOString();
      for (const { record, entry, progress } of await recoverBatches(storage, logger, checkpoints ? await checkpoints.loadLatest() : null)) {
        const b = record.batch;
        const batch: LocalBatch = {
          id: b.id,
          entry,
          inputFileId: b.input_file_id,
          expiresAt: b.expires_at,
          addedAt: clock.now(),
          priority: b.priority ?? 0,
          paused: (b.paused_at ?? null) !== null,
          items: [],
          progress,
          writer: null,
        };
        if (b.status === "cancelling") entry.stop ??= "cancel";
        const validate = item("validate", VALIDATE_ITEM);
        batch.items.push(validate);
        if (b.in_progress_at !== null) {
          validate.done = true;
          if (b.status === "finalizing") batch.items.push(item("finalize", FINALIZE_ITEM));
          else batch.items.push(item("slice", 0, wholeInput(record)));
        }
        batches.set(b.id, batch);
      }
      if (batches.size) logger.info(`resumed ${batches.size} unfinished batch(es)`);
    },

    async leave() {
      for (const batch of batches.values()) for (const i of batch.items) i.held = false;
    },

    async addBatch(record) {
      const b = record.batch;
      const entry: ActiveEntry = { owner: record.owner };
      await storage.documents.put(activeBatchKey(b.id), entry);
      batches.set(b.id, {
        id: b.id,
        entry,
        inputFileId: b.input_file_id,
        expiresAt: b.expires_at,
        addedAt: clock.now(),
        priority: b.priority ?? 0,
        paused: false,
        items: [item("validate", VALIDATE_ITEM)],
        progress: null,
        writer: null,
      });
    },

    async notifyWork() {
      signal({ kind: "work" });
    },

    async stopBatch(batchId, reason, failure = null) {
      const batch = batches.get(batchId);
      if (!batch || batch.entry.stop === "fail" || (batch.entry.stop && reason !== "fail")) return false;
      batch.entry = { ...batch.entry, stop: reason, ...(failure ? { failure } : {}) };
      await saveEntry(batch);
      signal({ kind: "stop", batchId });
      return true;
    },

    async stopOf(batchId): Promise<BatchStop | undefined> {
      const batch = batches.get(batchId);
      return batch && { stop: batch.entry.stop ?? null, failure: batch.entry.failure ?? null, paused: batch.paused };
    },

    async stopsOf(batchIds) {
      const halts = new Map<string, Halt>();
      for (const id of batchIds) {
        const batch = batches.get(id);
        const halt = batch?.entry.stop ?? (batch?.paused ? "pause" : undefined);
        if (halt) halts.set(id, halt);
      }
      return halts;
    },

    async pauseBatch(batchId, paused) {
      const batch = batches.get(batchId);
      if (!batch) return false;
      if (batch.paused !== paused) {
        batch.paused = paused;
        signal(paused ? { kind: "stop", batchId } : { kind: "work" });
      }
      return true;
    },

    async expireDue() {
      const now = clock.now() / 1000;
      const expired: string[] = [];
      for (const batch of batches.values()) {
        // A batch whose lines are all done finalizes as it is: its window ended too late to matter.
        if (batch.entry.stop || batch.expiresAt > now || batch.items.some((i) => i.kind === "finalize")) continue;
        if (await ledger.stopBatch(batch.id, "expire")) expired.push(batch.id);
      }
      return expired;
    },

    async isInputInUse(fileId) {
      for (const batch of batches.values()) if (batch.inputFileId === fileId) return true;
      return false;
    },

    async liveTotals(batchId) {
      const progress = batches.get(batchId)?.progress;
      return progress ? totalsOf(progress) : null;
    },

    async recordedSince(batchId, after) {
      // A position is where each log was read to: logs only grow, and only their durable length is read.
      const match = after === null ? ["", "0", "0"] : /^o(\d{1,15})\.e(\d{1,15})$/.exec(after);
      if (!match) return null;
      const keys = [outputLogKey(batchId), errorLogKey(batchId)];
      const from = [Number(match[1]), Number(match[2])];
      const to = await Promise.all(keys.map((key) => storage.logs.length(key)));
      const parts = keys.map((key, i) => ({ key, from: from[i], to: Math.max(from[i], to[i]) }));
      return { records: logStretches(storage, parts), next: `o${parts[0].to}.e${parts[1].to}` };
    },

    async totals(batchId) {
      return totalsOf(batches.get(batchId)?.progress ?? null);
    },

    async claim(kinds, how: ClaimOptions = {}) {
      const claimed = (batch: LocalBatch, found: LocalItem) => {
        found.held = true;
        found.token++;
        const { held: _, done: __, ...spec } = found;
        return { ...spec, batchId: batch.id, owner: batch.entry.owner, stop: batch.entry.stop ?? null, priority: batch.priority };
      };
      if (!how.beyondLimit) {
        for (const batch of batches.values()) {
          const found = batch.items.find((i) => !i.held && !i.done && i.kind !== "slice" && kinds.includes(i.kind));
          if (found) return claimed(batch, found);
        }
      }
      if (!kinds.includes("slice")) return null;
      const chosen = chooseSlice([...batches.values()], how, (owner) => options.ownerWeights?.get(owner) ?? 1);
      return chosen && claimed(chosen.batch, chosen.slice);
    },

    async heartbeat(items) {
      return items.filter((ref) => held(ref) !== null);
    },

    async release(ref) {
      const found = held(ref);
      if (found) found.held = false;
    },

    async holds(ref) {
      return held(ref) !== null;
    },

    async slicedSoFar() {
      return { lines: 0, bytes: 0 };
    },

    async addSlices(ref, slices, final = true) {
      if (!final) throw new Error("a local ledger's batch is one slice, added at once");
      const validate = held(ref);
      const batch = batches.get(ref.batchId);
      if (!validate || !batch) return false;
      validate.done = true;
      validate.held = false;
      if (slices.length) {
        slices.forEach((slice, i) => batch.items.push(item("slice", i, slice)));
        const lines = Math.max(0, ...slices.map((slice) => slice.firstLine + slice.lineCount - 1));
        batch.progress = new BatchProgress(lines);
      } else {
        batch.items.push(item("finalize", FINALIZE_ITEM));
      }
      signal({ kind: "work" });
      return true;
    },

    async finishSlice(ref) {
      const slice = held(ref);
      const batch = batches.get(ref.batchId);
      if (!slice || !batch) return false;
      slice.done = true;
      slice.held = false;
      if (batch.items.every((i) => i.kind !== "slice" || i.done)) {
        batch.items.push(item("finalize", FINALIZE_ITEM));
        signal({ kind: "work" });
      }
      return true;
    },

    async removeBatch(batchId) {
      batches.delete(batchId);
      await storage.documents.delete(activeBatchKey(batchId));
    },

    async resultSink(claimed, record): Promise<ResultSink> {
      const batch = batches.get(claimed.batchId);
      if (!batch) throw new Error(`batch ${claimed.batchId} is not in the ledger`);
      const writer = await liveWriter(batch, record.input_lines);
      const progress = batch.progress!;
      return { finishedIn: async () => (line) => progress.isDone(line), writer };
    },

    async resultFileContents(ref) {
      const batch = batches.get(ref.batchId);
      const contents: { output: ResultFileContent | null; errors: ResultFileContent | null } = { output: null, errors: null };
      for (const [kind, key] of [["output", outputLogKey(ref.batchId)], ["errors", errorLogKey(ref.batchId)]] as const) {
        const bytes = await storage.logs.length(key);
        if (bytes === 0) continue;
        // The writer hashed the log as it appended, unless a restart or a failed write came between.
        const kept = batch?.writer?.digest(kind);
        const digest = kept?.bytes === bytes ? kept : await hashLog(storage, key);
        contents[kind] = { bytes, content: { store: "logs", key }, sha256: digest.sha256, marks: digest.marks };
      }
      return contents;
    },

    async liveNodes() {
      return { count: 1, first: nodeId };
    },

    async addedSecondsAgo(batchId) {
      const batch = batches.get(batchId);
      return batch ? (clock.now() - batch.addedAt) / 1000 : null;
    },

    async nodes(): Promise<NodeRow[]> {
      me ??= await thisProcess();
      const now = new Date(clock.now()).toISOString();
      return [{ ...me, nodeId, startedAt, heartbeatAt: now, silentSeconds: 0 }];
    },

    heldItems: async () => heldItemsOf(batches.values(), nodeId),
    batchesInWork: async () => batchesInWorkOf(batches.values()),
    overview: async () => overviewOf(batches.values()),

    async checkpoint() {
      if (!checkpoints) return null;
      const state = snapshotOf(
        [...batches.values()].map((batch) => ({ id: batch.id, status: statusOf(batch), progress: batch.progress })),
        nodeId,
        clock.now(),
      );
      const fingerprint = JSON.stringify({ ...state, createdAt: 0 });
      if (fingerprint === lastCheckpoint) return null;
      const sequence = await checkpoints.save(state);
      lastCheckpoint = fingerprint;
      return sequence;
    },
  };
  return ledger;
}

