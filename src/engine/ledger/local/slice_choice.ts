/**
 * Which slice a local ledger's claim takes: of batches not paused (unless
 * they must stop), the highest priority first, then the owner holding fewest
 * slices for its weight, then the oldest batch. A claim beyond the node's
 * limit takes only a slice that would otherwise wait behind its own (see
 * `ClaimOptions`). The PostgreSQL ledger orders its claims the same way in
 * SQL (`../postgres/cluster_store.ts`).
 *
 * @module
 */
import type { ClaimOptions } from "../ledger.ts";
import type { LocalBatch, LocalItem } from "./local_ledger.ts";

/** The slice to claim from `batches` (in the order they were added), or null. */
export function chooseSlice(
  batches: readonly LocalBatch[],
  how: ClaimOptions,
  weightOf: (owner: string) => number,
): { batch: LocalBatch; slice: LocalItem } | null {
  const heldBy = new Map<string, number>();
  for (const batch of batches) {
    const held = batch.items.filter((i) => i.kind === "slice" && i.held && !i.done).length;
    if (held) heldBy.set(batch.entry.owner, (heldBy.get(batch.entry.owner) ?? 0) + held);
  }
  const share = (owner: string) => (heldBy.get(owner) ?? 0) / weightOf(owner);
  const mostShare = Math.max(0, ...[...heldBy.keys()].map(share));
  let best: { batch: LocalBatch; slice: LocalItem; share: number } | null = null;
  for (const batch of batches) {
    if (batch.paused && !batch.entry.stop) continue;
    const slice = batch.items.find((i) => i.kind === "slice" && !i.held && !i.done);
    if (!slice) continue;
    const owner = batch.entry.owner;
    const beyond = how.beyondLimit;
    if (beyond && !(batch.priority > beyond.lowestPriority || share(owner) + 1 / weightOf(owner) <= mostShare)) continue;
    if (!best || batch.priority > best.batch.priority || (batch.priority === best.batch.priority && share(owner) < best.share)) {
      best = { batch, slice, share: share(owner) };
    }
  }
  return best && { batch: best.batch, slice: best.slice };
}
