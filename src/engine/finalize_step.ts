/**
 * Finalizing a batch, by the one node that holds its finalize item: the lines
 * an expiry left are recorded as `batch_expired`, its results become its
 * output and error files (recorded as they lie: the logs of a local ledger,
 * the results table of a PostgreSQL one; nothing is copied), and the batch
 * gets its final status and counts. Another node (or this one after a crash)
 * redoes it:
 *
 * - the result files' ids are planned in the document first (compare-and-swap),
 *   so every finalizer records the same files; recording one again is harmless;
 * - results no longer change once a batch is finalizing (its slices are done);
 * - the final status is a compare-and-swap that no finalizer makes twice, and
 *   its webhook event, fixed by batch and status, is recorded before it.
 *
 * @module
 */
import { isBlankLine, readLines } from "../batch/input/line_splitter.ts";
import { newFileId } from "../batch/model/ids.ts";
import { type BatchErrorEntry, type BatchRecord, type BatchStatus, FINAL_STATUSES, type FileRecord } from "../batch/model/objects.ts";
import { fileBlobKey, fileDocKey } from "../batch/model/storage_keys.ts";
import { changeRecord, readRecord } from "./batch_docs.ts";
import { type EngineContext, nowSeconds } from "./context.ts";
import type { BatchTotals, HeldItem, ResultFileContent, WorkItem } from "./ledger/ledger.ts";
import { RESULTS_AWAITING_COMMIT } from "./lines/line_runner.ts";
import { CANCELLED_MESSAGE, EXPIRED_MESSAGE, failureRecord } from "./lines/result_records.ts";
import { inputOf } from "./slicing.ts";
import { setStatus } from "./status.ts";
import { recordEndEvent } from "./webhook_outbox.ts";

/**
 * Runs a claimed finalize item. With `withoutResults` (finalizing a failing
 * batch failed too), it ends the batch `failed` without result files.
 */
export async function runFinalize(context: EngineContext, item: WorkItem, withoutResults = false): Promise<void> {
  const { ledger, storage } = context;
  const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
  const stopped = await ledger.stopOf(item.batchId);
  let record = await readRecord(storage, item.owner, item.batchId);
  if (!record || !stopped || FINAL_STATUSES.has(record.batch.status)) {
    // Ended by a finalizer that died before taking it out of the ledger.
    if (stopped) await ledger.removeBatch(item.batchId);
    return;
  }
  const { stop } = stopped;
  const failure = stop === "fail" && stopped.failure ? (JSON.parse(stopped.failure) as BatchErrorEntry) : null;
  let files = { output: null as string | null, error: null as string | null };
  let totals: BatchTotals | null = null;
  if (!withoutResults) {
    // A message batch gives every request a result: the count before its undone ones are recorded is kept.
    const before = record.message_batch && stop !== null && stop !== "fail" ? await ledger.totals(item.batchId) : null;
    record = await changeRecord(storage, item.owner, item.batchId, (current) => {
      if (FINAL_STATUSES.has(current.batch.status)) return false;
      let changed = false;
      if (before && current.message_batch && current.message_batch.results_before_end === null) {
        current.message_batch.results_before_end = before.completed + before.failed;
        changed = true;
      }
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
    if (stop === "expire" && (record.batch.in_progress_at !== null || record.message_batch)) {
      await recordUndoneLines(context, item, record, { code: "batch_expired", message: EXPIRED_MESSAGE });
    }
    // Its input was made by batchspool from a request it accepted: valid, even if the cancel came before validation ended.
    if (stop === "cancel" && record.message_batch) {
      await recordUndoneLines(context, item, record, { code: "batch_cancelled", message: CANCELLED_MESSAGE });
    }
    files = await recordResultFiles(context, held, record);
    if (!(await ledger.holds(held))) {
      context.logger.info(`batch ${item.batchId}: finalized by another node (this one's claim lapsed)`);
      return;
    }
    totals = await ledger.totals(item.batchId);
  } else {
    totals = await ledger.totals(item.batchId).catch(() => null);
  }

  const ended = await endBatch(context, record, (current) => {
    if (withoutResults || stop === "fail") return "failed";
    if (current.batch.status === "cancelling" || stop === "cancel") return "cancelled";
    if (stop === "expire") return "expired";
    return "completed";
  }, (current) => {
    current.batch.output_file_id = files.output;
    current.batch.error_file_id = files.error;
    if (totals) {
      current.batch.request_counts = { total: current.batch.request_counts.total, completed: totals.completed, failed: totals.failed };
      current.batch.usage = totals.usage;
    }
    if (failure) current.batch.errors = { object: "list", data: [failure] };
  });
  if (!ended) return;
  await ledger.removeBatch(item.batchId);
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
  context: EngineContext,
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
    await recordEndEvent(context, ending);
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

/** Records `error` for each request line without a result, through the ledger (fenced by the claim). */
async function recordUndoneLines(
  context: EngineContext,
  item: WorkItem,
  record: BatchRecord,
  error: { code: string; message: string },
): Promise<void> {
  const sink = await context.ledger.resultSink(item, record);
  for await (const group of readLines(await inputOf(context.storage, record))) {
    const lines = group.filter((l) => l.text !== null && !isBlankLine(l.text));
    if (!lines.length) continue;
    const first = lines[0].line;
    const finished = await sink.finishedIn(first, lines[lines.length - 1].line - first + 1);
    for (const { line, text } of lines) {
      if (finished(line)) continue;
      const customId = (JSON.parse(text!) as { custom_id: string }).custom_id;
      sink.writer.add("errors", { line, record: failureRecord(line, customId, error) });
    }
    await sink.writer.below(RESULTS_AWAITING_COMMIT);
  }
  await sink.writer.below(1);
}

/** Records the batch's non-empty result files where its results lie; returns their ids (null: none). */
async function recordResultFiles(
  context: EngineContext,
  held: HeldItem,
  record: BatchRecord,
): Promise<{ output: string | null; error: string | null }> {
  const b = record.batch;
  const now = nowSeconds(context);
  const expiresAt = record.output_expires_after_seconds === null ? null : now + record.output_expires_after_seconds;
  const contents = await context.ledger.resultFileContents(held, record);
  const ids = { output: null as string | null, error: null as string | null };
  const plans: [ResultFileContent | null, string, "output" | "error"][] = [
    [contents.output, record.planned_output_file_id!, "output"],
    [contents.errors, record.planned_error_file_id!, "error"],
  ];
  for (const [content, fileId, kind] of plans) {
    if (!content) continue;
    ids[kind] = fileId;
    // Recorded by a finalizer before this one (it died before the final status): recorded alike.
    if (await context.storage.documents.get(fileDocKey(record.owner, fileId))) continue;
    const fileRecord: FileRecord = {
      file: {
        id: fileId,
        object: "file",
        bytes: content.bytes,
        created_at: now,
        filename: `${b.id}_${kind}.jsonl`,
        purpose: "batch_output",
        status: "processed",
        expires_at: expiresAt,
        status_details: null,
      },
      owner: record.owner,
      ...(content.sha256 ? { sha256: content.sha256, marks: content.marks } : {}),
      content: content.content,
    };
    await context.files.adopt(fileRecord);
  }
  return ids;
}

/** Deletes the input's bytes when its file was deleted while the batch ran and no other batch uses it. */
async function removeDeletedInput(context: EngineContext, record: BatchRecord): Promise<void> {
  const inputId = record.batch.input_file_id;
  if (await context.ledger.isInputInUse(inputId)) return;
  if (await context.storage.documents.get(fileDocKey(record.owner, inputId))) return;
  await context.storage.blobs.delete(fileBlobKey(inputId));
}
