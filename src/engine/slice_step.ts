/**
 * Running a claimed slice: skip the lines that already have a result (a
 * slice resumed after a restart, or taken over from a node that died), send
 * the rest through the line runner, and record each result through the
 * ledger, fenced by the claim. When its lines are done, or its batch stopped,
 * the slice is marked done; the last one of a batch makes its finalizing. A
 * slice of a batch paused is handed back instead, with its results so far.
 *
 * @module
 */
import { readRecord } from "./batch_docs.ts";
import type { EngineContext } from "./context.ts";
import { EngineError } from "./engine_error.ts";
import type { HeldItem, WorkItem } from "./ledger/ledger.ts";
import { dispatchLines, type RunningSlice, runningSlice } from "./lines/line_runner.ts";
import { linesToRun } from "./slicing.ts";

/** A slice this node is running, as its heartbeat and its handling of stops see it. */
export interface SliceInFlight {
  held: HeldItem;
  slice: RunningSlice;
}

/** Runs a claimed slice; `running` knows of it while its lines are in flight. */
export async function runSlice(context: EngineContext, item: WorkItem, running: Map<string, SliceInFlight>): Promise<void> {
  const { ledger, storage } = context;
  const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
  if (item.stop === null) {
    const record = await readRecord(storage, item.owner, item.batchId);
    if (!record) throw new EngineError("not_ready", `batch ${item.batchId} has no document`);
    const sink = await ledger.resultSink(item, record);
    const finished = await sink.finishedIn(item.firstLine, item.lineCount);
    const queue = { id: item.batchId, owner: record.owner, priority: record.batch.priority ?? 0, maxInFlight: record.batch.max_concurrency ?? null };
    const slice = runningSlice(queue, sink.writer);
    const key = `${item.batchId}/${item.item}`;
    running.set(key, { held, slice });
    try {
      await dispatchLines(context.run, slice, linesToRun(storage, record, item, finished));
    } finally {
      running.delete(key);
    }
    // Closing: the slice is handed back as it is, for this node's next life or another node to finish.
    if (context.run.stopping.aborted) return;
    // Paused: handed back as it is, and claimed again once resumed (or stopped).
    if (slice.paused) return await ledger.release(held);
  }
  await ledger.finishSlice(held);
}
