/**
 * A clock that tells another's time (a database's): read now and then, and
 * advanced in between by the local monotonic clock. Processes that share the
 * source agree on `now()` to within a round trip, whatever their own wall
 * clocks say; timers stay local (a duration is the same everywhere).
 *
 * @module
 */
import { type Clock, type ClockTimer, systemClock } from "./clock.ts";

/** Options for {@link SyncedClock}. */
export interface SyncedClockOptions {
  /** The local clock: its monotonic time and timers (default the system's). */
  base?: Clock;
  /** How often the source is read again (default every minute). */
  refreshMs?: number;
}

/**
 * The time of `source` (milliseconds since the epoch), between readings
 * advanced by the local monotonic clock; never steps back.
 *
 * @example
 * ```ts
 * const clock = new SyncedClock(async () => (await sql`select extract(epoch from clock_timestamp()) * 1000 as ms`)[0].ms);
 * await clock.start();
 * clock.now(); // the database's time
 * ```
 */
export class SyncedClock implements Clock {
  readonly #source: () => Promise<number>;
  readonly #base: Clock;
  readonly #refreshMs: number;
  /** The source's time at local monotonic time `#anchorMonotonic`. */
  #anchorTime: number;
  #anchorMonotonic: number;
  #latest = Number.NEGATIVE_INFINITY;
  #timer: ClockTimer | undefined;
  #stopped = false;

  constructor(source: () => Promise<number>, options: SyncedClockOptions = {}) {
    this.#source = source;
    this.#base = options.base ?? systemClock;
    this.#refreshMs = options.refreshMs ?? 60_000;
    // Until the first reading, the local wall clock.
    this.#anchorTime = this.#base.now();
    this.#anchorMonotonic = this.#base.monotonic();
  }

  /** Reads the source once (at the middle of the round trip, as well as one can tell). */
  async sync(): Promise<void> {
    const sent = this.#base.monotonic();
    const time = await this.#source();
    const received = this.#base.monotonic();
    this.#anchorTime = time + (received - sent) / 2;
    this.#anchorMonotonic = received;
  }

  /** Reads the source, then again every `refreshMs` until {@link stop} (a failed reading keeps the last one). */
  async start(): Promise<void> {
    await this.sync();
    const next = () => {
      if (this.#stopped) return;
      this.#timer = this.#base.setTimeout(() => void this.sync().catch(() => {}).finally(next), this.#refreshMs, true);
    };
    next();
  }

  /** Stops reading the source; the clock goes on from its last reading. */
  stop(): void {
    this.#stopped = true;
    this.#base.clearTimeout(this.#timer);
  }

  now(): number {
    // A new reading may put the time a little behind what was already told: time is never told backwards.
    this.#latest = Math.max(this.#latest, this.#anchorTime + (this.#base.monotonic() - this.#anchorMonotonic));
    return this.#latest;
  }

  monotonic(): number {
    return this.#base.monotonic();
  }

  setTimeout(callback: () => void, ms: number, unref?: boolean): ClockTimer {
    return this.#base.setTimeout(callback, ms, unref);
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    this.#base.clearTimeout(timer);
  }
}
