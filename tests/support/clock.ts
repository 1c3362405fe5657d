/**
 * A clock the test moves by hand: timers fire when the test advances time past
 * them, in order, never because the machine was fast or slow.
 */
import type { Clock, ClockTimer } from "../../src/shared/clock.ts";

interface Timer {
  at: number;
  seq: number;
  callback: () => void;
}

export class ManualClock implements Clock {
  #elapsed = 0;
  #seq = 0;
  readonly #timers = new Map<number, Timer>();

  /** @param epochMs the wall-clock time it starts at */
  constructor(readonly epochMs: number = Date.parse("2026-12-01T00:00:00Z")) {}

  now(): number {
    return this.epochMs + this.#elapsed;
  }

  monotonic(): number {
    return this.#elapsed;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#elapsed + Math.max(0, ms), seq, callback });
    return seq;
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    this.#timers.delete(timer as number);
  }

  /** Timers not yet run. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the next timer falls due (milliseconds from now), or null when none is set. */
  get nextIn(): number | null {
    let next: number | null = null;
    for (const timer of this.#timers.values()) next = next === null ? timer.at : Math.min(next, timer.at);
    return next === null ? null : next - this.#elapsed;
  }

  /**
   * Moves time forward by `ms`: each timer that falls due runs at its own
   * time, in order, and the promise continuations it starts run before the next.
   */
  async advance(ms: number): Promise<void> {
    const end = this.#elapsed + ms;
    for (;;) {
      await settle();
      let due: Timer | null = null;
      for (const timer of this.#timers.values()) {
        if (timer.at <= end && (due === null || timer.at < due.at || (timer.at === due.at && timer.seq < due.seq))) due = timer;
      }
      if (!due) break;
      this.#timers.delete(due.seq);
      this.#elapsed = Math.max(this.#elapsed, due.at);
      due.callback();
    }
    this.#elapsed = end;
    await settle();
  }
}

/** Lets pending promise continuations (and what they start at once) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}
