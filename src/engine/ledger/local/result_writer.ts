/**
 * The local ledger's result writer: a batch's result records go to its logs
 * in groups: while one append to a
 * log is being made durable, the results that arrive queue up and go together
 * in the next one. The storage's group commit already shares one fsync among
 * concurrent appends; grouping here also shares the per-append work (key
 * checks, encoding, promises), which dominates once results arrive faster than
 * a disk flush.
 *
 * A result counts as finished (in `progress`) only once its group is durable.
 * Each log's digest is kept up as its groups are appended (see
 * `running_log_digest.ts`), so the batch's end need not read the logs back.
 *
 * @module
 */
import type { MarkedDigest } from "../../../integrity/digest_marks.ts";
import { type Clock, type ClockTimer, systemClock } from "../../../shared/clock.ts";
import type { Storage } from "../../../storage/types.ts";
import type { BatchProgress, LogKind } from "./batch_progress.ts";
import { RunningLogDigest } from "./running_log_digest.ts";
import { type EngineObserver, NO_OBSERVER } from "../../lines/engine_observer.ts";
import { PendingWaiters } from "../../lines/pending_waiters.ts";
import { type PendingResult, reportRecorded, type ResultWriter } from "../../lines/results.ts";
import { errorLogKey, outputLogKey } from "../../../batch/model/storage_keys.ts";

/**
 * Least time between the starts of two appends to one log; the first result
 * of a group also waits this long for company, unless someone waits for all
 * of them (`below(1)`): the end of a batch does not linger. Each append ends
 * in an fdatasync, which costs CPU (the kernel's journal, the disk's flush)
 * besides its wait; appending again as soon as the last one is durable made
 * small groups and hundreds of fdatasyncs a second against a fast upstream,
 * where spacing them caps the rate whatever the load. Results become durable
 * at most this much later, which a batch's caller cannot notice.
 */
const LINGER_MS = 10;
/** A group this large is written without waiting. */
const FULL_GROUP = 512;
/** A batch's two logs. */
const LOG_KINDS: readonly LogKind[] = ["output", "errors"];

/** A batch's writer of results into its logs. */
export interface LogResultWriter extends ResultWriter {
  /**
   * The digest of a log, when this writer made every append to it since the
   * log was empty (compare `bytes` with the log's length); null otherwise. Ask
   * once everything is durable (`below(1)`): a later append is not in it.
   */
  digest(kind: LogKind): MarkedDigest | null;
  /** Whether a write failed: nothing more is written, and the logs must be read again before another writer writes. */
  readonly failed: boolean;
}

/**
 * Creates the result writer of one batch.
 *
 * @example
 * ```ts
 * const writer = createResultWriter(storage, batchId, progress);
 * writer.add("output", { line: 3, record, usage });
 * await writer.below(1); // durable
 * ```
 */
export function createResultWriter(
  storage: Storage,
  batchId: string,
  progress: BatchProgress,
  clock: Clock = systemClock,
  observer: EngineObserver = NO_OBSERVER,
): LogResultWriter {
  const queues: Record<LogKind, PendingResult[]> = { output: [], errors: [] };
  const flushing: Record<LogKind, boolean> = { output: false, errors: false };
  const lingering: Record<LogKind, ClockTimer | null> = { output: null, errors: null };
  /** Ends the pause between two appends early (a full group is waiting). */
  const wake: Record<LogKind, (() => void) | null> = { output: null, errors: null };
  const keys: Record<LogKind, string> = { output: outputLogKey(batchId), errors: errorLogKey(batchId) };
  const digests: Record<LogKind, RunningLogDigest> = { output: new RunningLogDigest(), errors: new RunningLogDigest() };
  const waiters = new PendingWaiters();
  let pending = 0;
  let failure: unknown = null;

  /**
   * Whether someone waits for every queued result to be durable (the end of a
   * run): then the pause that gathers company only delays them. A wait for
   * room (`below` with a larger limit) keeps the pause: results keep coming.
   */
  const draining = () => waiters.draining;

  const notify = () => waiters.update(pending, failure);

  /** Waits `ms`, or less if {@link wake} is called. */
  const pause = (kind: LogKind, ms: number) =>
    new Promise<void>((resolve) => {
      const timer = clock.setTimeout(() => {
        wake[kind] = null;
        resolve();
      }, ms);
      wake[kind] = () => {
        clock.clearTimeout(timer);
        wake[kind] = null;
        resolve();
      };
    });

  const flush = async (kind: LogKind) => {
    flushing[kind] = true;
    while (queues[kind].length) {
      const started = clock.monotonic();
      const group = queues[kind];
      queues[kind] = [];
      // After a failure nothing more is appended: the failed group may be in the log
      // (whole or torn) past what `progress` knows, and the writer's owner must learn
      // it from the log before writing again. Dropped results stay unfinished.
      if (failure === null) {
        try {
          const records = group.map((result) => result.record);
          const appended = await storage.logs.append(keys[kind], records);
          digests[kind].follow(records, appended);
          for (const result of group) progress.record(result.line, kind, result.usage, appended.end);
          reportRecorded(observer, group.map((result) => ({ kind, result })));
        } catch (error) {
          digests[kind].lose();
          failure ??= error;
        }
      }
      pending -= group.length;
      notify();
      const rest = started + LINGER_MS - clock.monotonic();
      const gather = queues[kind].length > 0 && queues[kind].length < FULL_GROUP && !draining();
      if (rest > 0 && gather) await pause(kind, Math.ceil(rest));
    }
    flushing[kind] = false;
  };

  /** Writes what is queued without the pause: ends a pause in progress, or starts a flush now. */
  const flushNow = (kind: LogKind) => {
    wake[kind]?.();
    clock.clearTimeout(lingering[kind] ?? undefined);
    lingering[kind] = null;
    if (!flushing[kind] && queues[kind].length > 0) void flush(kind);
  };

  return {
    add(kind, result) {
      if (failure !== null) return;
      queues[kind].push(result);
      pending++;
      // A full group, or one someone waits to see durable, goes without the pause.
      if (queues[kind].length >= FULL_GROUP || draining()) flushNow(kind);
      else if (!flushing[kind]) {
        lingering[kind] ??= clock.setTimeout(() => {
          lingering[kind] = null;
          if (!flushing[kind]) void flush(kind);
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
      if (!draining()) return waiting;
      // Someone waits for everything: no more company is coming, so what is queued goes now.
      for (const kind of LOG_KINDS) flushNow(kind);
      return waiting;
    },
    digest: (kind) => digests[kind].finish(),
    get failed() {
      return failure !== null;
    },
  };
}
