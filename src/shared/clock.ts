/**
 * Time, as every part that waits or stamps reads it: injected, so that tests
 * drive timers themselves instead of sleeping and hoping.
 *
 * @module
 */
import { unrefTimer } from "../runtime/unref_timer.ts";

/** A pending timer of a {@link Clock}. */
export type ClockTimer = { readonly __clockTimer: unique symbol } | number | object;

/** Where time comes from. */
export interface Clock {
  /** Wall-clock milliseconds since the epoch: for timestamps. */
  now(): number;
  /** Milliseconds on a clock that never steps back or jumps: for durations and deadlines. */
  monotonic(): number;
  /** Calls `callback` once, `ms` from now; with `unref`, the wait does not keep the process alive. */
  setTimeout(callback: () => void, ms: number, unref?: boolean): ClockTimer;
  /** Cancels a timer (nothing happens for one that ran or is undefined). */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/**
 * The real clock: `Date.now`, `performance.now` and the runtime's timers.
 *
 * @example
 * ```ts
 * const started = systemClock.monotonic();
 * systemClock.setTimeout(() => console.log(systemClock.monotonic() - started), 100);
 * ```
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (callback, ms, unref) => {
    const timer = setTimeout(callback, ms);
    if (unref) unrefTimer(timer);
    return timer as ClockTimer;
  },
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout> | undefined),
};

/** Longest delay a runtime's `setTimeout` takes (longer ones fire at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Waits `ms` on `clock`; resolves false early when `signal` aborts.
 *
 * @example
 * ```ts
 * if (!(await sleep(systemClock, 500, signal))) return; // aborted
 * ```
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
