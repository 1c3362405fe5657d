/**
 * Writes a claimed item's results (a slice's, or the finalizer's expired
 * lines) to the results table in groups, each in one statement that first
 * checks this node still holds the item (fencing, see `cluster_store.ts`).
 * Each group goes with its SHA-256, checked whenever it is read. Once a write
 * finds the item claimed by another node, nothing more is written and every
 * wait fails with `lease_lost`.
 *
 * @module
 */
import { type BatchUsage, copyUsage } from "../../../batch/model/objects.ts";
import { addUsage } from "../../../batch/model/usage.ts";
import type { EngineObserver } from "../../lines/engine_observer.ts";
import { PendingWaiters } from "../../lines/pending_waiters.ts";
import { type PendingResult, reportRecorded, type ResultKind, type ResultWriter } from "../../lines/results.ts";
import type { Clock, ClockTimer } from "../../../shared/clock.ts";
import { type HeldItem, LeaseLostError } from "../ledger.ts";
import type { ClusterStore, ResultRow } from "./cluster_store.ts";

/**
 * Least time between two writes of a slice, and how long a first result waits
 * for company: longer than a single node's 10 ms, as every node's slices write
 * to one database, and each write is a transaction of its own.
 */
const LINGER_MS = 50;
/** A group this large is written without waiting. */
const FULL_GROUP = 512;
/**
 * Most record text in one statement (128 K characters of JSON, about as many
 * bytes, as the PostgreSQL blob store's writes): the client builds each
 * statement in a buffer it grows step by step, and larger ones left more
 * garbage than the collector frees promptly.
 */
const GROUP_BYTES = 128 * 1024;

/** A slice's counts so far, as recorded with its results. */
export interface SliceCounts {
  completed: number;
  failed: number;
  usage: BatchUsage;
}

/**
 * Creates the writer of one claimed item, starting from the counts its slice
 * had recorded when it was claimed (none: the finalizer's, which records no counts).
 */
export function createSliceWriter(
  store: ClusterStore,
  held: HeldItem,
  counts: SliceCounts | null,
  clock: Clock,
  observer: EngineObserver,
): ResultWriter {
  let queue: { kind: ResultKind; result: PendingResult }[] = [];
  let queuedBytes = 0;
  let pending = 0;
  let failure: unknown = null;
  let flushing = false;
  let lingering: ClockTimer | null = null;
  const waiters = new PendingWaiters();
  const draining = () => waiters.draining;

  const notify = () => waiters.update(pending, failure);

  const flush = async () => {
    flushing = true;
    while (queue.length && failure === null) {
      const started = clock.monotonic();
      const group = takeGroup();
      try {
        const next: SliceCounts | null = counts && { completed: counts.completed, failed: counts.failed, usage: copyUsage(counts.usage) };
        const rows: ResultRow[] = group.map(({ kind, result }) => {
          if (next) {
            if (kind === "output") next.completed++;
            else next.failed++;
            addUsage(next.usage, result.usage);
          }
          return { line: result.line, isError: kind === "errors", record: result.record };
        });
        if (await store.recordResults(held, rows, next ?? undefined)) {
          counts = next;
          reportRecorded(observer, group);
        } else {
          failure = new LeaseLostError(`item ${held.item} of ${held.batchId} was claimed by another node`);
        }
      } catch (error) {
        failure ??= error;
      }
      pending -= group.length;
      notify();
      const rest = started + LINGER_MS - clock.monotonic();
      if (rest > 0 && queue.length > 0 && !isFull() && !draining()) {
        await new Promise<void>((resolve) => clock.setTimeout(resolve, Math.ceil(rest)));
      }
    }
    if (failure !== null) {
      pending -= queue.length;
      queue = [];
      queuedBytes = 0;
      notify();
    }
    flushing = false;
  };

  const isFull = () => queue.length >= FULL_GROUP || queuedBytes >= GROUP_BYTES;

  /** The next group to write: the queue's head, up to a full group's count or bytes. */
  const takeGroup = () => {
    let count = 0;
    let bytes = 0;
    while (count < queue.length && count < FULL_GROUP && (count === 0 || bytes < GROUP_BYTES)) {
      bytes += queue[count++].result.record.length;
    }
    const group = queue.slice(0, count);
    queue = queue.slice(count);
    queuedBytes -= bytes;
    return group;
  };

  const flushNow = () => {
    clock.clearTimeout(lingering ?? undefined);
    lingering = null;
    if (!flushing && queue.length > 0) void flush();
  };

  return {
    add(kind, result) {
      if (failure !== null) return;
      queue.push({ kind, result });
      queuedBytes += result.record.length;
      pending++;
      if (isFull() || draining()) flushNow();
      else if (!flushing) {
        lingering ??= clock.setTimeout(() => {
          lingering = null;
          if (!flushing) void flush();
        }, LINGER_MS);
      }
    },
    get pending() {
      return pending;
    },
    below(limit) {
      if (failure !== null) return Promise.reject(failure);
      if (pending < limit || pending === 0) return Promise.resolve();
      const waiting = waiters.wait(limit);
      if (draining()) flushNow();
      return waiting;
    },
  };
}
