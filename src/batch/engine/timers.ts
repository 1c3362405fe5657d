/**
 * A batch's timers: its completion window's end, and the grace a cancel gives
 * the requests in flight. They live with the batch and end with it.
 *
 * @module
 */
import { MAX_TIMER_MS } from "../../shared/clock.ts";
import type { ActiveBatch, StopReason } from "../run/active_batch.ts";
import type { EngineContext } from "./context.ts";

/** Runs `action` in `ms` (longer delays than a timer takes are waited in several). */
export function addTimer(context: EngineContext, batch: ActiveBatch, ms: number, action: () => void): void {
  const timer = context.clock.setTimeout(() => {
    batch.timers.delete(timer);
    action();
  }, Math.min(ms, MAX_TIMER_MS));
  batch.timers.add(timer);
}

/** Stops dispatching the batch's lines (the first reason given wins). */
export function stopBatch(batch: ActiveBatch, reason: StopReason): void {
  batch.stop ??= reason;
  batch.stopDispatch.abort();
}

/**
 * At the end of its completion window, a batch still validating or running
 * stops: no new line is sent, the requests in flight are abandoned, and its
 * step expires the lines left (see `lifecycle.ts`).
 */
export function scheduleExpiry(context: EngineContext, batch: ActiveBatch): void {
  const check = () => {
    const remaining = batch.record.batch.expires_at * 1000 - context.clock.now();
    if (remaining > 0) return addTimer(context, batch, remaining, check);
    const status = batch.record.batch.status;
    if (status === "validating" || status === "in_progress") {
      stopBatch(batch, "expire");
      batch.abortRequests.abort();
    }
  };
  check();
}
