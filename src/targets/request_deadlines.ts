/**
 * Per-request abort signals that fire when the caller's signal aborts or the
 * request's time is up, without a timer and an abort listener per request.
 *
 * @module
 */
import { type Clock, type ClockTimer, systemClock } from "../shared/clock.ts";

/** How a request learns that it must stop: a signal, or (cheaper) a callback. */
export interface RequestAbort {
  /** Aborts when the request must stop. */
  readonly signal: AbortSignal;
  /** Calls `listener` once when the request must stop (at once if it already must). */
  onAbort(listener: (reason: unknown) => void): void;
}

/** One request's deadline, from {@link RequestDeadlines.start}. */
export interface RequestDeadline extends RequestAbort {
  /** Aborts when the caller's signal does or when the time is up; made on first use. */
  readonly signal: AbortSignal;
  /** Whether the request was aborted because the time was up. */
  timedOut(): boolean;
  /** Call once the request is over (answered or failed). */
  done(): void;
}

interface Entry {
  /** Made only when the request's `signal` is asked for. */
  controller: AbortController | null;
  listener: ((reason: unknown) => void) | null;
  aborted: boolean;
  reason: unknown;
  deadline: number;
  timedOut: boolean;
  outer: Set<Entry>;
}

function abortEntry(entry: Entry, reason: unknown): void {
  entry.aborted = true;
  entry.reason = reason;
  entry.controller?.abort(reason);
  entry.listener?.(reason);
  entry.listener = null;
}

/**
 * The deadlines of one target's requests. Every request gets the same timeout,
 * so requests expire in the order they started: one timer, set for the oldest
 * request still running, serves them all; and one listener per caller's signal
 * (a batch run shares one) relays its abort to every request started with it.
 * A request's own `AbortSignal` is made only if it is asked for: a transport
 * that takes a callback (`onAbort`) costs no `AbortController` and no listener.
 *
 * @example
 * ```ts
 * const deadlines = new RequestDeadlines(600_000);
 * const deadline = deadlines.start(request.signal);
 * try {
 *   return await fetch(url, { signal: deadline.signal });
 * } finally {
 *   deadline.done();
 * }
 * ```
 */
export class RequestDeadlines {
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  /** Requests running, oldest (earliest deadline) first. */
  readonly #running = new Set<Entry>();
  readonly #byOuter = new WeakMap<AbortSignal, Set<Entry>>();
  #timer: ClockTimer | undefined;

  /**
   * @param timeoutMs how long each request may take
   * @param clock where time comes from (injectable for tests)
   */
  constructor(timeoutMs: number, clock: Clock = systemClock) {
    this.#timeoutMs = timeoutMs;
    this.#clock = clock;
  }

  /** Starts the deadline of one request, aborted also when `outer` aborts. */
  start(outer: AbortSignal): RequestDeadline {
    const entry: Entry = {
      controller: null,
      listener: null,
      aborted: false,
      reason: undefined,
      deadline: this.#clock.monotonic() + this.#timeoutMs,
      timedOut: false,
      outer: this.#entriesOf(outer),
    };
    if (outer.aborted) abortEntry(entry, outer.reason);
    else {
      entry.outer.add(entry);
      this.#running.add(entry);
      this.#timer ??= this.#clock.setTimeout(this.#expire, this.#timeoutMs);
    }
    return {
      get signal() {
        if (!entry.controller) {
          entry.controller = new AbortController();
          if (entry.aborted) entry.controller.abort(entry.reason);
        }
        return entry.controller.signal;
      },
      onAbort(listener) {
        if (entry.aborted) listener(entry.reason);
        else entry.listener = listener;
      },
      timedOut: () => entry.timedOut,
      done: () => this.#finish(entry),
    };
  }

  #entriesOf(outer: AbortSignal): Set<Entry> {
    let entries = this.#byOuter.get(outer);
    if (!entries) {
      const relayed = new Set<Entry>();
      entries = relayed;
      this.#byOuter.set(outer, relayed);
      outer.addEventListener("abort", () => {
        for (const entry of relayed) {
          this.#finish(entry);
          abortEntry(entry, outer.reason);
        }
      }, { once: true });
    }
    return entries;
  }

  #finish(entry: Entry): void {
    entry.outer.delete(entry);
    this.#running.delete(entry);
    if (this.#running.size === 0 && this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #expire = (): void => {
    this.#timer = undefined;
    const now = this.#clock.monotonic();
    for (const entry of this.#running) {
      if (entry.deadline > now) {
        this.#timer = this.#clock.setTimeout(this.#expire, entry.deadline - now);
        return;
      }
      this.#finish(entry);
      entry.timedOut = true;
      abortEntry(entry, new DOMException("timed out", "TimeoutError"));
    }
  };
}
