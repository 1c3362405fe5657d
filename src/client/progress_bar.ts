/**
 * Progress display for `submit --wait`: a bar on a terminal, a plain line every
 * few seconds otherwise.
 *
 * @module
 */
import type { BatchObject } from "../batch/model/objects.ts";

/** Formats seconds as `h:mm:ss` or `m:ss`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

/** Tracks the rate between polls and renders one status line. */
export class ProgressView {
  #firstAt: number | null = null;
  #firstDone = 0;

  /**
   * One line describing `batch`, with a bar of `width` cells when `bar` is set.
   *
   * @example
   * ```ts
   * view.render(batch, Date.now(), true);
   * // "[#######.............] 350/1000 · 3 failed · 120/s · ETA 0:05 · in_progress"
   * ```
   */
  render(batch: BatchObject, now: number, bar: boolean, width = 30): string {
    const { total, completed, failed } = batch.request_counts;
    const done = completed + failed;
    if (this.#firstAt === null && batch.status === "in_progress") {
      this.#firstAt = now;
      this.#firstDone = done;
    }
    const elapsed = this.#firstAt === null ? 0 : (now - this.#firstAt) / 1000;
    const rate = elapsed > 0 ? (done - this.#firstDone) / elapsed : 0;
    const eta = rate > 0 && total > done ? ` · ETA ${formatDuration((total - done) / rate)}` : "";
    const parts = [`${done}/${total || "?"}`, `${completed} completed`, `${failed} failed`];
    if (rate > 0) parts.push(`${rate.toFixed(rate < 10 ? 1 : 0)}/s`);
    const text = `${parts.join(" · ")}${eta} · ${batch.status}`;
    if (!bar) return text;
    const filled = total ? Math.round((done / total) * width) : 0;
    return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${text}`;
  }
}
