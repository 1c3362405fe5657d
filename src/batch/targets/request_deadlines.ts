/**
 * Per-request abort signals that fire when the caller's signal aborts or the
 * request's time is up, without a timer and an abort listener per request.
 *
 * @module
 */

/** One request's deadline, from {@link RequestDeadlines.start}. */
export interface RequestDeadline {
  /** Aborts when the caller's signal does or when the time is up. */
  readonly signal: AbortSignal;
  /** Whether the signal aborted because the time was up. */
  timedOut(): boolean;
  /** Call once the request is over (answered or failed). */
  done(): void;
}

interface Entry {
  controller: AbortController;
  deadline: number;
  timedOut: boolean;
  outer: Set<Entry>;
}

/**
 * The deadlines of one target's requests. Every request gets the same timeout,
 * so requests expire in the order they started: one timer, set for the oldest
 * request still running, serves them all; and one listener per caller's signal
 * (a batch run shares one) relays its abort to every request started with it.
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
  /** Requests running, oldest (earliest deadline) first. */
  readonly #running = new Set<Entry>();
  readonly #byOuter = new WeakMap<AbortSignal, Set<Entry>>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param timeoutMs how long each request may take */
  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  /** Starts the deadline of one request, aborted also when `outer` aborts. */
  start(outer: AbortSignal): RequestDeadline {
    const controller = new AbortController();
    const entry: Entry = {
      controller,
      deadline: performance.now() + this.#timeoutMs,
      timedOut: false,
      outer: this.#entriesOf(outer),
    };
    if (outer.aborted) controller.abort(outer.reason);
    else {
      entry.outer.add(entry);
      this.#running.add(entry);
      this.#timer ??= setTimeout(this.#expire, this.#timeoutMs);
    }
    return {
      signal: controller.signal,
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
          entry.controller.abort(outer.reason);
        }
      }, { once: true });
    }
    return entries;
  }

  #finish(entry: Entry): void {
    entry.outer.delete(entry);
    this.#running.delete(entry);
    if (this.#running.size === 0 && this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  #expire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    for (const entry of this.#running) {
      if (entry.deadline > now) {
        this.#timer = setTimeout(this.#expire, entry.deadline - now);
        return;
      }
      this.#finish(entry);
      entry.timedOut = true;
      entry.controller.abort(new DOMException("timed out", "TimeoutError"));
    }
  };
}
