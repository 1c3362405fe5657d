/**
 * Keeps a busy loop of promise continuations from starving the event loop,
 * without pausing it when the event loop is turning anyway.
 *
 * @module
 */

/**
 * Watches whether the event loop has had a turn (a macrotask ran) within the
 * last `sliceMs`. `share()` returns at once while it has; only a loop that has
 * kept the event loop from turning for longer waits for one macrotask.
 *
 * A loop that always yielded after `sliceMs` would lose a timer's minimum delay
 * (1 ms on Node and Bun, 2 ms on Deno) every slice, even while it mostly waits
 * for network answers; this one pays that only when it has been starving I/O.
 *
 * @example
 * ```ts
 * const share = createEventLoopShare(4);
 * for (const item of items) {
 *   await share.share();
 *   await handle(item); // may resolve as a microtask
 * }
 * share.close();
 * ```
 */
export function createEventLoopShare(sliceMs: number): { share(): Promise<void>; close(): void } {
  let turned = false;
  let turn: Promise<void>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sliceStart = 0;
  const arm = () => {
    turned = false;
    sliceStart = performance.now();
    turn = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        turned = true;
        timer = undefined;
        resolve();
      }, 0);
    });
  };
  arm();
  return {
    async share() {
      if (performance.now() - sliceStart <= sliceMs) return;
      if (!turned) await turn;
      arm();
    },
    close() {
      clearTimeout(timer);
    },
  };
}
