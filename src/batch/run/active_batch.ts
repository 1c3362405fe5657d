/**
 * The in-memory state of a batch that has not ended.
 *
 * @module
 */
import type { Clock, ClockTimer } from "../../shared/clock.ts";
import { type BatchErrorEntry, type BatchObject, type BatchRecord, copyBatch, copyUsage } from "../model/objects.ts";
import type { Storage } from "../../storage/types.ts";
import type { BatchProgress } from "./batch_progress.ts";
import { createResultWriter, type ResultWriter } from "./result_writer.ts";
import type { EngineObserver } from "./engine_observer.ts";

/** Why a batch stops dispatching before its lines are all done. */
export type StopReason = "cancel" | "expire";

/** A batch the engine is working on. */
export interface ActiveBatch {
  record: BatchRecord;
  /** Version of the batch document last written or read. */
  version: number;
  /** Known once the batch is in progress. */
  progress: BatchProgress | null;
  /** Writes results into the logs and `progress`; set with `progress`. */
  results: ResultWriter | null;
  /** Set when the batch must stop dispatching (cancel or expiry). */
  stop: StopReason | null;
  /** Aborted when dispatching must stop: wakes waits for slots and backoffs. */
  stopDispatch: AbortController;
  /** Aborted when requests in flight must be abandoned. */
  abortRequests: AbortController;
  /** Input lines whose requests are in flight now. */
  inFlight: Set<number>;
  timers: Set<ClockTimer>;
  /** Serialises writes of the batch document. */
  writes: Promise<unknown>;
  /** Set when a step failed in a way that cannot heal: the batch ends `failed` with this entry. */
  failure: BatchErrorEntry | null;
  /** Set when the batch document's stored version must be read again before the next write. */
  versionUnknown: boolean;
}

/** Creates the in-memory state for a stored batch record. */
export function activate(record: BatchRecord, version: number): ActiveBatch {
  return {
    record,
    version,
    progress: null,
    results: null,
    stop: null,
    stopDispatch: new AbortController(),
    abortRequests: new AbortController(),
    inFlight: new Set(),
    timers: new Set(),
    writes: Promise.resolve(),
    failure: null,
    versionUnknown: false,
  };
}

/** The public Batch object with live counts and usage. */
export function liveBatchObject(active: ActiveBatch): BatchObject {
  const batch = copyBatch(active.record.batch);
  const progress = active.progress;
  if (progress) {
    batch.request_counts = {
      total: batch.request_counts.total,
      completed: progress.completed,
      failed: progress.failed,
    };
    batch.usage = copyUsage(progress.usage);
  }
  return batch;
}

/** Gives a batch its progress, and a result writer that records into it. */
export function attachProgress(
  active: ActiveBatch,
  progress: BatchProgress,
  storage: Storage,
  clock: Clock,
  observer?: EngineObserver,
): void {
  active.progress = progress;
  active.results = createResultWriter(storage, active.record.batch.id, progress, clock, observer);
}
