/**
 * What happens to a batch, step by step: validation, running its lines,
 * expiry, cancellation, failure and finalizing (the states are in
 * `status.ts`). Each step writes the batch document before it moves on, so a
 * crash at any point resumes from the last step written.
 *
 * @module
 */
import { BatchError } from "../model/errors.ts";
import { newFileId } from "../model/ids.ts";
import { type BatchErrorEntry, copyUsage, FINAL_STATUSES } from "../model/objects.ts";
import { attachProgress, type ActiveBatch, liveBatchObject } from "../run/active_batch.ts";
import { BatchProgress } from "../run/batch_progress.ts";
import { dispatchLines, expireRemaining } from "../run/line_runner.ts";
import type { BatchObject } from "../model/objects.ts";
import { persist, refreshVersion, retire } from "./batch_store.ts";
import { type EngineContext, nowSeconds } from "./context.ts";
import { recordResultFiles } from "./result_files.ts";
import { setStatus } from "./status.ts";
import { checkInput } from "./batch_intake.ts";
import { recordEndEvent } from "./webhook_outbox.ts";
import { addTimer } from "./timers.ts";

/**
 * Moves a batch along its lifecycle until it ends or the engine closes. Called
 * again after a failed step (see `supervisor.ts`), it goes on from the state
 * last written.
 */
export async function advance(context: EngineContext, batch: ActiveBatch): Promise<void> {
  const b = batch.record.batch;
  if (batch.versionUnknown) await refreshVersion(context, batch);
  if (batch.failure) return failKeepingResults(context, batch, batch.failure);
  if (b.status === "validating") {
    await validate(context, batch);
    if (FINAL_STATUSES.has(b.status)) return;
  }
  if (b.status === "in_progress") {
    if (batch.stop === null) await dispatchLines(context.run, batch);
    if (context.closing.aborted) return;
    if (batch.stop === "expire") {
      await expireRemaining(context.run, batch);
      return finalize(context, batch, "expired");
    }
    return finalize(context, batch, batch.stop === "cancel" ? "cancelled" : "completed");
  }
  if (b.status === "cancelling") return finalize(context, batch, "cancelled");
  if (b.status === "finalizing") return finalize(context, batch, "completed");
}

/**
 * Cancels a batch: no new line is sent at once, the document says
 * `cancelling`, and requests in flight get `cancelGraceMs` to finish before
 * they are aborted. Its step then finalizes it as `cancelled`, keeping the
 * results so far as files. A cancel wins over an expiry still being handled.
 *
 * @throws {BatchError} `conflict` when the batch already ended
 */
export async function cancel(context: EngineContext, batch: ActiveBatch): Promise<BatchObject> {
  const status = batch.record.batch.status;
  if (FINAL_STATUSES.has(status)) throw new BatchError("conflict", `Cannot cancel a batch with status '${status}'.`);
  if (status !== "cancelling") {
    batch.stop = "cancel";
    batch.stopDispatch.abort();
    setStatus(batch.record.batch, "cancelling", nowSeconds(context));
    await persist(context, batch);
    addTimer(context, batch, context.cancelGraceMs, () => batch.abortRequests.abort());
  }
  return liveBatchObject(batch);
}

/** Checks the batch's input (`input_check.ts`); errors fail the batch. */
async function validate(context: EngineContext, batch: ActiveBatch): Promise<void> {
  const b = batch.record.batch;
  const checked = await checkInput(context, batch.record.owner, b);
  if (!checked.ok) return failValidation(context, batch, checked.errors);
  batch.record.input_lines = checked.lines;
  b.model = checked.model;
  b.request_counts = { total: checked.requests, completed: 0, failed: 0 };
  attachProgress(batch, new BatchProgress(checked.lines), context.storage, context.clock, context.run.observer);
  // A cancel that arrived during validation has already moved the batch to cancelling.
  if (batch.stop !== "cancel") setStatus(b, "in_progress", nowSeconds(context));
  await persist(context, batch);
}

/** Ends a batch whose input did not validate. */
async function failValidation(context: EngineContext, batch: ActiveBatch, errors: BatchErrorEntry[]): Promise<void> {
  batch.record.batch.errors = { object: "list", data: errors };
  setStatus(batch.record.batch, "failed", nowSeconds(context));
  await recordEndEvent(context, batch);
  await persist(context, batch);
  await retire(context, batch);
  context.logger.info(`batch ${batch.record.batch.id} failed validation (${errors.length} error(s))`);
}

/** Ends a batch that can no longer run; results already written are kept as files. */
async function failKeepingResults(context: EngineContext, batch: ActiveBatch, failure: BatchErrorEntry): Promise<void> {
  batch.record.batch.errors = { object: "list", data: [failure] };
  if (planResultFiles(context, batch)) await persist(context, batch);
  await recordResultFiles(context.storage, context.files, batch, nowSeconds(context));
  applyCounts(batch);
  setStatus(batch.record.batch, "failed", nowSeconds(context));
  await recordEndEvent(context, batch);
  await persist(context, batch);
  await retire(context, batch);
}

/** Ends a batch whose results cannot be recorded as files: only its status and the reason are written. */
export async function failWithoutResults(context: EngineContext, batch: ActiveBatch, failure: BatchErrorEntry): Promise<void> {
  batch.record.batch.errors = { object: "list", data: [failure] };
  applyCounts(batch);
  setStatus(batch.record.batch, "failed", nowSeconds(context));
  await recordEndEvent(context, batch);
  await persist(context, batch);
  await retire(context, batch);
}

/**
 * Ends a batch whose lines are all done (or stopped): its logs become its
 * result files, its counts final. The move to `finalizing` and the result
 * files' ids take one write, so finalizing again after a crash records the
 * same files. A cancel that arrived while finalizing makes it `cancelled`.
 */
async function finalize(
  context: EngineContext,
  batch: ActiveBatch,
  outcome: "completed" | "cancelled" | "expired",
): Promise<void> {
  const b = batch.record.batch;
  let unsaved = planResultFiles(context, batch);
  if (outcome === "completed" && b.status !== "finalizing") {
    setStatus(b, "finalizing", nowSeconds(context));
    unsaved = true;
  }
  if (unsaved) await persist(context, batch);
  await recordResultFiles(context.storage, context.files, batch, nowSeconds(context));
  applyCounts(batch);
  setStatus(b, batch.stop === "cancel" ? "cancelled" : outcome, nowSeconds(context));
  await recordEndEvent(context, batch);
  await persist(context, batch);
  await retire(context, batch);
  context.logger.info(
    `batch ${b.id} ${b.status}: ${b.request_counts.completed} completed, ${b.request_counts.failed} failed of ${b.request_counts.total}`,
  );
}

/**
 * Picks the ids of the batch's result files, unless it has them; true when
 * it did, and the record must be written before any file is recorded.
 */
function planResultFiles(context: EngineContext, batch: ActiveBatch): boolean {
  const record = batch.record;
  if (record.planned_output_file_id && record.planned_error_file_id) return false;
  record.planned_output_file_id = newFileId(context.clock.now());
  record.planned_error_file_id = newFileId(context.clock.now());
  return true;
}

/** Copies the live counts and usage into the batch object. */
function applyCounts(batch: ActiveBatch): void {
  const progress = batch.progress;
  if (!progress) return;
  const b = batch.record.batch;
  b.request_counts = { total: b.request_counts.total, completed: progress.completed, failed: progress.failed };
  b.usage = copyUsage(progress.usage);
}

