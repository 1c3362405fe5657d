/**
 * What a local ledger's batches look like from outside: their statuses as
 * their items show them, the items held, the batches in work and the
 * overview the metrics report.
 *
 * @module
 */
import type { BatchStatus } from "../../../batch/model/objects.ts";
import type { BatchInWork, HeldItemView, LedgerOverview } from "../ledger.ts";
import type { LocalBatch } from "./local_ledger.ts";

/** A batch's status as its items show it. */
export function statusOf(batch: LocalBatch): BatchStatus {
  if (batch.entry.stop === "cancel") return "cancelling";
  if (!batch.items.find((i) => i.kind === "validate")?.done) return "validating";
  if (batch.items.some((i) => i.kind === "finalize") && !batch.entry.stop) return "finalizing";
  return "in_progress";
}

/** Every item held now. */
export function heldItemsOf(batches: Iterable<LocalBatch>, nodeId: string): HeldItemView[] {
  const views: HeldItemView[] = [];
  for (const batch of batches) {
    for (const i of batch.items) {
      if (!i.held || i.done) continue;
      views.push({ nodeId, batchId: batch.id, item: i.item, kind: i.kind, firstLine: i.firstLine, lineCount: i.lineCount, leaseSeconds: null });
    }
  }
  return views;
}

/** The batches not yet ended, with their slices. */
export function batchesInWorkOf(batches: Iterable<LocalBatch>): BatchInWork[] {
  return [...batches].map((batch) => {
    const slices = batch.items.filter((i) => i.kind === "slice");
    const validated = batch.items.find((i) => i.kind === "validate")?.done;
    return {
      batchId: batch.id,
      stop: batch.entry.stop ?? null,
      slices: slices.length,
      slicesLeft: validated ? slices.filter((i) => !i.done).length : null,
    };
  });
}

/** The batches by status, and their lines not yet finished. */
export function overviewOf(batches: Iterable<LocalBatch>): LedgerOverview {
  const overview: LedgerOverview = { batches: {}, linesWaiting: 0 };
  for (const batch of batches) {
    const status = statusOf(batch);
    overview.batches[status] = (overview.batches[status] ?? 0) + 1;
    const progress = batch.progress;
    if (progress && status !== "cancelling") overview.linesWaiting += Math.max(0, progress.lines - progress.finished);
  }
  return overview;
}
