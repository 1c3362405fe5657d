/**
 * A batch's validation on a cluster: check the input, cut it into slices, move
 * the batch to `in_progress`, and hand the slices to every node. Each step
 * can be done again by another node after a crash: the cut is the same, the
 * document change is a compare-and-swap, the slices' insert is fenced.
 *
 * @module
 */
import { checkInput } from "../batch/engine/batch_intake.ts";
import { setStatus } from "../batch/engine/status.ts";
import { recordEndEvent } from "../batch/engine/webhook_outbox.ts";
import { FINAL_STATUSES } from "../batch/model/objects.ts";
import { fileBlobKey } from "../batch/model/storage_keys.ts";
import { verifiedStream } from "../integrity/digest_marks.ts";
import { changeRecord, readRecord } from "./batch_docs.ts";
import type { WorkItem } from "./cluster_store.ts";
import { type ClusterContext, nowSeconds } from "./context.ts";
import { cutSlices } from "./slicing.ts";

/** A batch row older than this without its document was left by a node that died creating it. */
const ORPHAN_AFTER_SECONDS = 60;

/** Runs a claimed validation item. */
export async function runValidation(context: ClusterContext, item: WorkItem): Promise<void> {
  const { store, storage } = context;
  const held = { batchId: item.batchId, item: item.item, token: item.token };
  const record = await readRecord(storage, item.owner, item.batchId);
  if (!record) {
    // Its creator writes the document right after the row: young, it is on its way (the claim lapses and is tried again).
    const age = await store.batchAge(item.batchId);
    if (age === null || age > ORPHAN_AFTER_SECONDS) await store.removeBatch(item.batchId);
    return;
  }
  const batch = record.batch;
  if (FINAL_STATUSES.has(batch.status)) {
    // It failed validation and the node died before taking it out of the cluster.
    await store.removeBatch(item.batchId);
    return;
  }
  if (batch.status === "validating") {
    const checked = await checkInput(context, record.owner, batch);
    if (!checked.ok) {
      if (!(await store.holds(held))) return;
      const failed = structuredClone(record);
      failed.batch.errors = { object: "list", data: checked.errors };
      setStatus(failed.batch, "failed", nowSeconds(context));
      await recordEndEvent(context, { record: failed });
      const now = await changeRecord(storage, record.owner, batch.id, (current) => {
        if (current.batch.status !== "validating") return false;
        current.batch.errors = failed.batch.errors;
        setStatus(current.batch, "failed", failed.batch.failed_at!);
        return true;
      });
      if (now?.batch.status === "failed") {
        await store.removeBatch(item.batchId);
        context.logger.info(`batch ${batch.id} failed validation (${checked.errors.length} error(s))`);
        return;
      }
      // Cancelled while it was checked: it ends cancelled, with no slices.
      await store.addSlices(held, []);
      return;
    }
    const now = await changeRecord(storage, record.owner, batch.id, (current) => {
      if (FINAL_STATUSES.has(current.batch.status) || current.batch.in_progress_at !== null) return false;
      current.input_lines = checked.lines;
      current.batch.model = checked.model;
      current.batch.request_counts = { total: checked.requests, completed: 0, failed: 0 };
      // A cancel that arrived meanwhile has already moved it to cancelling: its slices end at once.
      if (current.batch.status === "validating") setStatus(current.batch, "in_progress", nowSeconds(context));
      else current.batch.in_progress_at = nowSeconds(context);
      return true;
    });
    if (now) record.batch.in_progress_at = now.batch.in_progress_at;
  }
  if (record.batch.in_progress_at === null) {
    // Cancelled before it was checked: nothing to run.
    await store.addSlices(held, []);
    return;
  }
  const input = verifiedStream(await storage.blobs.get(fileBlobKey(batch.input_file_id)), record.input_digest);
  const slices = await cutSlices(input, context.sliceLimits);
  if (await store.addSlices(held, slices)) {
    context.logger.info(`batch ${batch.id}: ${slices.length} slice(s) of at most ${context.sliceLimits.maxLines} lines`);
  } else {
    context.logger.info(`batch ${batch.id}: validated by another node (this one's claim lapsed)`);
  }
}
