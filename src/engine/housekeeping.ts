/**
 * Work the engine repeats while it runs (the node's polls and heartbeats,
 * checkpoints, sweeps of expired files): one at a time per kind, on the
 * injected clock, stopped when the engine closes, and waited for by `close`.
 *
 * @module
 */
import type { Clock } from "../shared/clock.ts";

/** Repeated work of one engine. */
export class Housekeeping {
  readonly #clock: Clock;
  readonly #closing: AbortSignal;
  readonly #running = new Set<Promise<void>>();

  constructor(clock: Clock, closing: AbortSignal) {
    this.#clock = clock;
    this.#closing = closing;
  }

  /** Runs `task` every `ms` (first at once when `atOnce`) until the engine closes, never two at once. */
  repeat(ms: number, task: () => Promise<void>, atOnce = false): void {
    const runTask = () => {
      const running = task();
      this.#running.add(running);
      void running.finally(() => this.#running.delete(running)).then(next);
    };
    const next = () => {
      if (this.#closing.aborted) return;
      const timer = this.#clock.setTimeout(() => {
        this.#closing.removeEventListener("abort", stop);
        runTask();
      }, ms);
      const stop = () => this.#clock.clearTimeout(timer);
      this.#closing.addEventListener("abort", stop, { once: true });
    };
    if (atOnce) runTask();
    else next();
  }

  /** Resolves once no task is running (after the engine closed, none starts). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#running]);
  }
}
