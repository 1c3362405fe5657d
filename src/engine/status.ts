/**
 * A batch's status and the timestamp each status sets, as OpenAI's:
 * ```
 * validating ─→ failed
 * validating ─→ in_progress ─→ finalizing ─→ completed
 * in_progress ─→ expired
 * validating | in_progress | finalizing ─→ cancelling ─→ cancelled
 * any step that cannot go on ─→ failed (with the reason in errors.data)
 * ```
 *
 * @module
 */
import type { BatchObject, BatchStatus } from "../batch/model/objects.ts";

/** The timestamp field each status sets. */
const STAMPS: Record<BatchStatus, keyof BatchObject | null> = {
  validating: null,
  in_progress: "in_progress_at",
  finalizing: "finalizing_at",
  completed: "completed_at",
  failed: "failed_at",
  expired: "expired_at",
  cancelling: "cancelling_at",
  cancelled: "cancelled_at",
};

/**
 * Moves `batch` to `status` at `nowSeconds`, stamping the status's time.
 *
 * @example
 * ```ts
 * setStatus(batch, "in_progress", 1_796_000_000); // batch.in_progress_at = 1_796_000_000
 * ```
 */
export function setStatus(batch: BatchObject, status: BatchStatus, nowSeconds: number): void {
  batch.status = status;
  const stamp = STAMPS[status];
  if (stamp) (batch as unknown as Record<string, number>)[stamp] = nowSeconds;
}
