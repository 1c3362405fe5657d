/**
 * Running a claimed slice: read its bytes (checked against the slice's
 * SHA-256), skip the lines that already have a result (a slice taken over
 * from a node that died), send the rest through the line runner, and record
 * each result fenced by the claim. When its lines are done, or its batch
 * stopped, the slice is marked done; the last one of a batch makes its
 * finalize item.
 *
 * @module
 */
import { isBlankLine } from "../batch/input/line_splitter.ts";
import type { RequestLine } from "../batch/input/validation.ts";
import { type BatchRecord, type BatchUsage, emptyUsage } from "../batch/model/objects.ts";
import { fileBlobKey } from "../batch/model/storage_keys.ts";
import { activate, type ActiveBatch } from "../batch/run/active_batch.ts";
import { dispatchLines, type LineToRun } from "../batch/run/line_runner.ts";
import { concatBytes } from "../shared/concat_bytes.ts";
import type { HeldItem, WorkItem } from "./cluster_store.ts";
import type { ClusterContext } from "./context.ts";
import { createSliceWriter } from "./slice_writer.ts";
import { sliceLines } from "./slicing.ts";

/** A slice this node is running, as the node's heartbeat and stop handling see it. */
export interface RunningSlice {
  held: HeldItem;
  active: ActiveBatch;
}

/** Runs a claimed slice; `running` is told of it while its lines are in flight. */
export async function runSlice(
  context: ClusterContext,
  item: WorkItem,
  record: BatchRecord,
  running: Map<string, RunningSlice>,
): Promise<void> {
  const { store } = context;
  const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
  if (item.stop === null) {
    const finished = new Set(await store.finishedLines(item.batchId, item.firstLine, item.lineCount));
    if (finished.size < item.lineCount) {
      const active = activate(record, 0);
      const usage = (item.usage ?? emptyUsage()) as BatchUsage;
      active.results = createSliceWriter(store, held, { completed: item.completed, failed: item.failed, usage }, context.clock, context.run.observer);
      const key = `${item.batchId}/${item.item}`;
      running.set(key, { held, active });
      try {
        await dispatchLines(context.run, active, unfinishedLines(context, item, record, finished));
      } finally {
        running.delete(key);
      }
      // Closing: the slice is handed back as it is (`ClusterStore.leave`), for another node to finish.
      if (context.run.stopping.aborted) return;
    }
  }
  await store.finishSlice(held);
}

/** The slice's request lines without a result, parsed a group at a time. */
async function* unfinishedLines(
  context: ClusterContext,
  item: WorkItem,
  record: BatchRecord,
  finished: Set<number>,
): AsyncGenerator<LineToRun[]> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const stream = await context.storage.blobs.get(fileBlobKey(record.batch.input_file_id), { start: item.byteStart, end: item.byteEnd });
  for await (const chunk of stream) {
    chunks.push(chunk);
    total += chunk.length;
  }
  for await (const group of sliceLines(concatBytes(chunks, total), { firstLine: item.firstLine, sha256: item.sha256! })) {
    const lines: LineToRun[] = [];
    for (const { line, text } of group) {
      if (text === null || finished.has(line) || isBlankLine(text)) continue;
      lines.push({ line, text, request: JSON.parse(text) as RequestLine });
    }
    if (lines.length) yield lines;
  }
}
