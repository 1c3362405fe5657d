/**
 * A batch's validation: check its input, move it to `in_progress`, and hand
 * its slices to the ledger (one slice, its whole input, on a single node; on
 * PostgreSQL, slices sized by the lines left and the live nodes). Each step
 * can be done again after a crash, on this node or another: the document
 * change is a compare-and-swap, and the slices are added with the validation's
 * end in one transaction fenced by the claim, so only one cut is ever kept.
 *
 * @module
 */
import { FINAL_STATUSES } from "../batch/model/objects.ts";
import { changeRecord, readRecord } from "./batch_docs.ts";
import { checkInput } from "./batch_intake.ts";
import { type EngineContext, nowSeconds } from "./context.ts";
import { EngineError } from "./engine_error.ts";
import type { HeldItem, WorkItem } from "./ledger/ledger.ts";
import { planSlices } from "./slicing.ts";
import { setStatus } from "./status.ts";
import { recordEndEvent } from "./webhook_outbox.ts";

/** A batch in the ledger this long without its document was left by a node that died creating it. */
const ORPHAN_AFTER_SECONDS = 60;

/** Runs a claimed validation item. */
export async function runValidation(context: EngineContext, item: WorkItem): Promise<void> {
  const { ledger, storage } = context;
  const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
  const record = await readRecord(storage, item.owner, item.batchId);
  if (!record) {
    const age = await ledger.addedSecondsAgo(item.batchId);
    if (age === null || age > ORPHAN_AFTER_SECONDS) return await ledger.removeBatch(item.batchId);
    // Its creator writes the document right after adding the batch.
    throw new EngineError("not_ready", `batch ${item.batchId} has no document yet`);
  }
  const batch = record.batch;
  if (FINAL_STATUSES.has(batch.status)) {
    // It failed validation and its node died before taking it out of the ledger.
    return await ledger.removeBatch(item.batchId);
  }
  let current = record;
  if (batch.status === "validating") {
    const checked = await checkInput(context, record);
    if (!checked.ok) {
      if (!(await ledger.holds(held))) return;
      const failed = structuredClone(record);
      failed.batch.errors = { object: "list", data: checked.errors };
      setStatus(failed.batch, "failed", nowSeconds(context));
      await recordEndEvent(context, failed);
      const now = await changeRecord(storage, record.owner, batch.id, (latest) => {
        if (latest.batch.status !== "validating") return false;
        latest.batch.errors = failed.batch.errors;
        setStatus(latest.batch, "failed", failed.batch.failed_at!);
        return true;
      });
      if (now?.batch.status === "failed") {
        await ledger.removeBatch(item.batchId);
        context.run.observer.batchEnded?.("failed");
        context.logger.info(`batch ${batch.id} failed validation (${checked.errors.length} error(s))`);
        return;
      }
      // Cancelled while it was checked: it ends cancelled, with no slices.
      await ledger.addSlices(held, []);
      return;
    }
    current = await changeRecord(storage, record.owner, batch.id, (latest) => {
      if (FINAL_STATUSES.has(latest.batch.status) || latest.batch.in_progress_at !== null) return false;
      latest.input_lines = checked.lines;
      latest.batch.model = checked.model;
      latest.batch.request_counts = { total: checked.requests, completed: 0, failed: 0 };
      // A cancel that arrived meanwhile has already moved it to cancelling: its slices end at once.
      if (latest.batch.status === "validating") setStatus(latest.batch, "in_progress", nowSeconds(context));
      else latest.batch.in_progress_at = nowSeconds(context);
      return true;
    }) ?? record;
  }
  if (current.batch.in_progress_at === null || FINAL_STATUSES.has(current.batch.status)) {
    // Cancelled before it was checked: nothing to run.
    await ledger.addSlices(held, []);
    return;
  }
  const nodes = ledger.sliceLimits ? (await ledger.liveNodes()).count : 1;
  const slices = await planSlices(storage, current, ledger.sliceLimits, nodes);
  if (await ledger.addSlices(held, slices)) {
    if (ledger.sliceLimits) context.logger.info(`batch ${batch.id}: ${slices.length} slice(s) for ${nodes} node(s)`);
  } else {
    context.logger.info(`batch ${batch.id}: validated by another node (this one's claim lapsed)`);
  }
}
