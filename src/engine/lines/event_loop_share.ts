/**
 * Keeps a busy loop of promise continuations from starving the event loop.
 *
 * @module
 */
import { letEventLoopRun } from "../../runtime/event_loop_turn.ts";

/**
 * Lets the event loop run (network and disk I/O, timers; see
 * `letEventLoopRun`) once the caller has run for more than `sliceMs` since it
 * last did. A loop whose awaits resolve at once (a target in the same process)
 * is all microtasks, which would otherwise keep status requests and uploads
 * waiting. (Skipping the turn when a timer already fired within the slice is
 * not enough: on Deno status requests then waited far longer.)
 *
 * @example
 * ```ts
 * const eventLoop = createEventLoopShare(4);
 * for (const item of items) {
 *   await eventLoop.share();
 *   await handle(item); // may resolve as a microtask
 * }
 * ```
 */
export function createEventLoopShare(sliceMs: number): { share(): Promise<void> } {
  let sliceStart = performance.now();
  return {
    async share() {
      if (performance.now() - sliceStart <= sliceMs) return;
      await letEventLoopRun();
      sliceStart = performance.now();
    },
  };
}
