/**
 * Timers that do not keep the process alive, on every runtime.
 *
 * @module
 */

/**
 * Lets the process exit while `timer` is pending: `unref()` on Node and Bun,
 * `Deno.unrefTimer` on Deno (whose timers are plain numbers).
 *
 * @example
 * ```ts
 * unrefTimer(setInterval(beat, 2_000));
 * ```
 */
export function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
    return;
  }
  const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno;
  if (typeof timer === "number") deno?.unrefTimer?.(timer);
}
