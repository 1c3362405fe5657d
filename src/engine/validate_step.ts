/**
 * A batch's validation: check its input, move it to `in_progress`, and hand
 * its slices to the ledger (one slice, its whole input, on a single node; on
 * PostgreSQL, slices sized by the lines left and the live nodes, added as
 * they are cut so that nodes start at once). Each step can be done again
 * after a crash, on this node or another: the document change is a
 * compare-and-swap, every add of slices is fenced by the validation's claim,
 * and a validation that resumes cuts on from where the slices added end.
 *
 * @module
 */
import { type BatchRecord, FINAL_STATUSES } from "../batch/model/objects.ts";
import { changeRecord, readRecord } from "./batch_docs.ts";
import { checkInput } from "./batch_intake.ts";
import { type EngineContext, nowSeconds } from "./context.ts";
import { EngineError } from "./engine_error.ts";
import type { HeldItem, SliceSpec, WorkItem } from "./ledger/ledger.ts";
import { slicesOf } from "./slicing.ts";
import { setStatus } from "./status.ts";
import { recordEndEvent } from "./webhook_outbox.ts";
import { letEventLoopRun } from "../runtime/event_loop_turn.ts";

/** A batch in the ledger this long without its document was left by a node that died creating it. */
const ORPHAN_AFTER_SECONDS = 60;
/**
 * Reads of a young batch's document before its validation is put off: its
 * creator adds the ledger entry first and writes the document right after, so
 * a node that claims the entry in between finds it a few reads later. Turns of
 * the event loop apart rather than a clock's delay: the wait is for that write.
 */
const READS_OF_A_NEW_DOCUMENT = 200;

/** Runs a claimed validation item. */
export async function runValidation(context: EngineContext, item: WorkItem): Promise<void> {
  const { ledger, storage } = context;
  const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
  let record = await readRecord(storage, item.owner, item.batchId);
  if (!record) {
    const age = await ledger.addedSecondsAgo(item.batchId);
    if (age === null || age > ORPHAN_AFTER_SECONDS) return await ledger.removeBatch(item.batchId);
    for (let read = 0; !record && read < READS_OF_A_NEW_DOCUMENT; read++) {
      await letEventLoopRun();
      record = await readRecord(storage, item.owner, item.batchId);
    }
    // Still none: its creator is slow or gone; the step is tried again after a backoff.
    if (!record) throw new EngineError("not_ready", `batch ${item.batchId} has no document yet`);
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
  await addSlicesAsCut(context, held, current);
}

/** Slices added while the cut goes on: the first ones at once, so that nodes start while the rest is cut. */
const FIRST_ADD = 2;
/** Then this many at a time (each add is a transaction, fenced by the validation's claim). */
const LATER_ADDS = 16;

/** Cuts the input into slices (resuming where an earlier claim's cut ended) and hands them to the ledger. */
async function addSlicesAsCut(context: EngineContext, held: HeldItem, record: BatchRecord): Promise<void> {
  const { ledger, storage } = context;
  // A batch with a limit of its own on requests in flight is one slice, so one node at a time runs it and keeps the limit.
  const limits = (record.batch.max_concurrency ?? null) === null ? ledger.sliceLimits : null;
  const nodes = limits ? (await ledger.liveNodes()).count : 1;
  const from = await ledger.slicedSoFar(held.batchId);
  let pending: SliceSpec[] = [];
  let added = 0;
  let count = 0;
  for await (const slice of slicesOf(storage, record, limits, nodes, from)) {
    pending.push(slice);
    count++;
    if (limits && pending.length >= (added ? LATER_ADDS : FIRST_ADD)) {
      if (!(await ledger.addSlices(held, pending, false))) return lostClaim(context, held);
      added += pending.length;
      pending = [];
    }
  }
  if (!(await ledger.addSlices(held, pending))) return lostClaim(context, held);
  if (limits) context.logger.info(`batch ${held.batchId}: ${count} slice(s) cut for ${nodes} node(s)`);
}

function lostClaim(context: EngineContext, held: HeldItem): void {
  context.logger.info(`batch ${held.batchId}: validated by another node (this one's claim lapsed)`);
}
