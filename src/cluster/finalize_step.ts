/**
 * Finalizing a batch on a cluster, by the one node that holds its finalize
 * item: the lines an expiry left are recorded as `batch_expired`, the results
 * table becomes the output and error files (in line order), and the batch
 * gets its final status and counts. Another node redoes it after a crash:
 *
 * - the result files' ids are planned in the document first (compare-and-swap),
 *   so every finalizer records the same files;
 * - each finalizer writes its files' bytes under keys of its own claim, and
 *   records a file only when no finalizer has recorded it yet. Results no
 *   longer change once a batch is finalizing, and are deleted only after the
 *   final status is written, which needs the files recorded first: so a file,
 *   once recorded, holds every result, and a finalizer that wakes late finds
 *   it recorded and leaves it;
 * - the final status is a compare-and-swap that no finalizer makes twice.
 *
 * @module
 */
import { setStatus } from "../batch/engine/status.ts";
import { recordEndEvent } from "../batch/engine/webhook_outbox.ts";
import { isBlankLine, readLines } from "../batch/input/line_splitter.ts";
import { newFileId } from "../batch/model/ids.ts";
import {
  type BatchErrorEntry,
  type BatchRecord,
  type BatchStatus,
  emptyUsage,
  FINAL_STATUSES,
  type FileRecord,
} from "../batch/model/objects.ts";
import { fileBlobKey, fileDocKey } from "../batch/model/storage_keys.ts";
import { addUsage } from "../batch/model/usage.ts";
import { EXPIRED_MESSAGE, failureRecord } from "../batch/run/result_records.ts";
import { DEFAULT_MARK_EVERY, verifiedStream } from "../integrity/digest_marks.ts";
import { changeRecord, readRecord } from "./batch_docs.ts";
import { ClusterError } from "./cluster_error.ts";
import type { HeldItem, ResultRow, WorkItem } from "./cluster_store.ts";
import { type ClusterContext, nowSeconds } from "./context.ts";

/** Runs a claimed finalize item. */
export async function runFinalize(context: ClusterContext, item: WorkItem): Promise<void> {
  const { store, storage } = context;
  const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
  const stopped = await store.stopOf(item.batchId);
  let record = await readRecord(storage, item.owner, item.batchId);
  if (!record || !stopped || FINAL_STATUSES.has(record.batch.status)) {
    // Ended by a finalizer that died before taking it out of the cluster.
    if (stopped) await store.removeBatch(item.batchId);
    return;
  }
  const { stop } = stopped;
  record = await changeRecord(storage, item.owner, item.batchId, (current) => {
    if (FINAL_STATUSES.has(current.batch.status)) return false;
    let changed = false;
    if (!current.planned_output_file_id || !current.planned_error_file_id) {
      current.planned_output_file_id = newFileId(context.clock.now());
      current.planned_error_file_id = newFileId(context.clock.now());
      changed = true;
    }
    if (stop === null && current.batch.status === "in_progress") {
      setStatus(current.batch, "finalizing", nowSeconds(context));
      changed = true;
    }
    return changed;
  });
  if (!record || FINAL_STATUSES.has(record.batch.status)) return;
  if (stop === "expire") await recordExpiredLines(context, held, record);

  const files = await recordResultFiles(context, held, record);
  if (!(await store.holds(held))) {
    context.logger.info(`batch ${item.batchId}: finalized by another node (this one's claim lapsed)`);
    return;
  }
  const counts = await store.resultCounts(item.batchId);
  const usage = emptyUsage();
  for (const sliceUsage of await store.sliceUsages(item.batchId)) addUsage(usage, sliceUsage);
  const failure = stop === "fail" && stopped.failure ? (JSON.parse(stopped.failure) as BatchErrorEntry) : null;

  const ended = await endBatch(context, record, (current) => {
    if (current.batch.status === "cancelling" || stop === "cancel") return "cancelled";
    if (stop === "expire") return "expired";
    if (stop === "fail") return "failed";
    return "completed";
  }, (current) => {
    current.batch.output_file_id = files.output;
    current.batch.error_file_id = files.error;
    current.batch.request_counts = { total: current.batch.request_counts.total, completed: counts.completed, failed: counts.failed };
    current.batch.usage = usage;
    if (failure) current.batch.errors = { object: "list", data: [failure] };
  });
  if (!ended) return;
  await store.removeBatch(item.batchId);
  await removeDeletedInput(context, ended);
  context.run.observer.batchEnded?.(ended.batch.status);
  const b = ended.batch;
  context.logger.info(
    `batch ${b.id} ${b.status}: ${b.request_counts.completed} completed, ${b.request_counts.failed} failed of ${b.request_counts.total}`,
  );
}

/**
 * Writes the final status: its webhook event first (fixed by batch and
 * status), then the document, unless another finalizer ended it already or a
 * cancel changed the status to write meanwhile (then again, with the new one).
 */
async function endBatch(
  context: ClusterContext,
  record: BatchRecord,
  statusOf: (current: BatchRecord) => BatchStatus,
  fill: (current: BatchRecord) => void,
): Promise<BatchRecord | null> {
  for (;;) {
    const current = await readRecord(context.storage, record.owner, record.batch.id);
    if (!current || FINAL_STATUSES.has(current.batch.status)) return null;
    const status = statusOf(current);
    const at = nowSeconds(context);
    const ending = structuredClone(current);
    fill(ending);
    setStatus(ending.batch, status, at);
    await recordEndEvent(context, { record: ending });
    let changedMeanwhile = false;
    const written = await changeRecord(context.storage, record.owner, record.batch.id, (latest) => {
      if (FINAL_STATUSES.has(latest.batch.status)) return false;
      if (statusOf(latest) !== status) {
        changedMeanwhile = true;
        return false;
      }
      fill(latest);
      setStatus(latest.batch, status, at);
      return true;
    });
    if (!changedMeanwhile) return written && written.batch.status === status ? written : null;
  }
}

/** Records `batch_expired` for each request line without a result, fenced by the finalize claim. */
async function recordExpiredLines(context: ClusterContext, held: HeldItem, record: BatchRecord): Promise<void> {
  const input = verifiedStream(await context.storage.blobs.get(fileBlobKey(record.batch.input_file_id)), record.input_digest);
  for await (const group of readLines(input)) {
    const lines = group.filter((l) => l.text !== null && !isBlankLine(l.text));
    if (!lines.length) continue;
    const first = lines[0].line;
    const finished = new Set(await context.store.finishedLines(held.batchId, first, lines[lines.length - 1].line - first + 1));
    const rows: ResultRow[] = [];
    for (const { line, text } of lines) {
      if (finished.has(line)) continue;
      const customId = (JSON.parse(text!) as { custom_id: string }).custom_id;
      rows.push({ line, isError: true, record: failureRecord(line, customId, { code: "batch_expired", message: EXPIRED_MESSAGE }) });
    }
    if (rows.length && !(await context.store.recordResults(held, rows))) {
      throw new ClusterError("lease_lost", `the finalizing of ${held.batchId} was claimed by another node`);
    }
  }
}

/** Writes and records the batch's non-empty result files; returns their ids (null: none). */
async function recordResultFiles(
  context: ClusterContext,
  held: HeldItem,
  record: BatchRecord,
): Promise<{ output: string | null; error: string | null }> {
  const { storage, files, store } = context;
  const b = record.batch;
  const now = nowSeconds(context);
  const expiresAt = record.output_expires_after_seconds === null ? null : now + record.output_expires_after_seconds;
  const ids = { output: null as string | null, error: null as string | null };
  for (const kind of ["output", "error"] as const) {
    const fileId = kind === "output" ? record.planned_output_file_id! : record.planned_error_file_id!;
    if (await storage.documents.get(fileDocKey(record.owner, fileId))) {
      ids[kind] = fileId;
      continue;
    }
    const key = `results/${b.id}/${held.token}/${kind}`;
    const info = await storage.blobs.put(key, recordsStream(store.results(b.id, kind === "error")), { markEvery: DEFAULT_MARK_EVERY });
    if (info.bytes === 0) {
      await storage.blobs.delete(key);
      continue;
    }
    // Recorded only if no finalizer recorded it meanwhile (see the module's comment).
    if (await storage.documents.get(fileDocKey(record.owner, fileId))) {
      await storage.blobs.delete(key);
    } else {
      const fileRecord: FileRecord = {
        file: {
          id: fileId,
          object: "file",
          bytes: info.bytes,
          created_at: now,
          filename: `${b.id}_${kind}.jsonl`,
          purpose: "batch_output",
          status: "processed",
          expires_at: expiresAt,
          status_details: null,
        },
        owner: record.owner,
        sha256: info.sha256,
        marks: info.marks!,
        content: { store: "blobs", key },
      };
      await files.adopt(fileRecord);
    }
    ids[kind] = fileId;
  }
  return ids;
}

/** Records as JSONL bytes, a group of rows at a time; the next group is read while the last one is written. */
function recordsStream(groups: AsyncGenerator<string[]>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let ahead: Promise<IteratorResult<string[]>> | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await (ahead ?? groups.next());
      if (done) return controller.close();
      ahead = groups.next();
      // A failure reading ahead is raised by the next pull.
      ahead.catch(() => {});
      controller.enqueue(encoder.encode(value.join("\n") + "\n"));
    },
    async cancel() {
      await groups.return(undefined);
    },
  }, { highWaterMark: 0 });
}

/** Deletes the input's bytes when its file was deleted while the batch ran and no other batch uses it. */
async function removeDeletedInput(context: ClusterContext, record: BatchRecord): Promise<void> {
  const inputId = record.batch.input_file_id;
  if ((await context.store.inputsInUse()).has(inputId)) return;
  if (await context.storage.documents.get(fileDocKey(record.owner, inputId))) return;
  await context.storage.blobs.delete(fileBlobKey(inputId));
}
