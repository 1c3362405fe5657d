/**
 * Admission control toward the target: one global limit on requests in flight,
 * optional requests-per-minute and tokens-per-minute budgets, fair rotation
 * between batches, and a target-wide slow-down when the target answers 429.
 *
 * @module
 */
import { type Clock, type ClockTimer, systemClock } from "../../shared/clock.ts";

/** Options for {@link Dispatcher}. */
export interface DispatcherOptions {
  /** Most requests in flight at once. */
  concurrency: number;
  /** Requests-per-minute budget (none when absent). */
  requestsPerMinute?: number;
  /** Tokens-per-minute budget (none when absent); spent by estimate, corrected by reported usage. */
  tokensPerMinute?: number;
  /** Time for budgets and pauses (injectable for tests). */
  clock?: Clock;
}

/** Permission to send one request; release it when the request is over. */
export interface Lease {
  /** Frees the slot; `actualTokens` corrects the token budget by what the response reported. */
  release(actualTokens?: number): void;
}

interface Waiter {
  tokens: number;
  signal: AbortSignal | undefined;
  grant(lease: Lease): void;
  fail(reason: unknown): void;
}

/** A budget refilled continuously at `perMinute` units a minute, holding at most a minute's worth. */
class TokenBucket {
  #level: number;
  #updatedAt: number;
  constructor(public perMinute: number, private readonly clock: Clock) {
    this.#level = perMinute;
    this.#updatedAt = clock.monotonic();
  }
  /** Changes the rate; what is saved up stays, up to a minute's worth at the new rate. */
  setRate(perMinute: number) {
    this.#refill();
    this.perMinute = perMinute;
    this.#level = Math.min(this.#level, perMinute);
  }
  #refill() {
    const now = this.clock.monotonic();
    this.#level = Math.min(this.perMinute, this.#level + ((now - this.#updatedAt) * this.perMinute) / 60_000);
    this.#updatedAt = now;
  }
  /** Milliseconds until `amount` can be spent (0: now). Amounts above a minute's worth wait for a full bucket. */
  waitFor(amount: number): number {
    this.#refill();
    const needed = Math.min(amount, this.perMinute);
    return this.#level >= needed ? 0 : Math.ceil(((needed - this.#level) * 60_000) / this.perMinute);
  }
  spend(amount: number) {
    this.#refill();
    this.#level -= amount;
  }
  refund(amount: number) {
    this.#refill();
    this.#level = Math.min(this.perMinute, this.#level + amount);
  }
}

/**
 * Grants leases in round-robin order across queues (one queue per batch), so a
 * huge batch cannot starve a small one.
 *
 * @example
 * ```ts
 * const dispatcher = new Dispatcher({ concurrency: 8, requestsPerMinute: 600 });
 * const lease = await dispatcher.acquire("batch_1", 120);
 * try { await send(); } finally { lease.release(); }
 * ```
 */
export class Dispatcher {
  readonly concurrency: number;
  #limit: number;
  #inFlight = 0;
  #pausedUntil = 0;
  #queues = new Map<string, Waiter[]>();
  #rotation: string[] = [];
  #next = 0;
  #timer: ClockTimer | undefined;
  #timerAt = Infinity;
  #requests: TokenBucket | undefined;
  #tokens: TokenBucket | undefined;
  #budgets: { requestsPerMinute?: number; tokensPerMinute?: number };
  #clock: Clock;
  /** Signals with the one listener that fails their waiters (a batch run passes the same signal every time). */
  #watched = new WeakSet<AbortSignal>();

  constructor(options: DispatcherOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    this.concurrency = options.concurrency;
    this.#limit = options.concurrency;
    this.#clock = options.clock ?? systemClock;
    this.#budgets = { requestsPerMinute: options.requestsPerMinute, tokensPerMinute: options.tokensPerMinute };
    if (options.requestsPerMinute) this.#requests = new TokenBucket(options.requestsPerMinute, this.#clock);
    if (options.tokensPerMinute) this.#tokens = new TokenBucket(options.tokensPerMinute, this.#clock);
  }

  /** Requests in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The current limit on requests in flight (lowered after 429s, raised back on successes). */
  get limit(): number {
    return Math.max(1, Math.floor(this.#limit));
  }

  /** Waits for a slot for `queue`; rejects with the signal's reason when aborted first. */
  acquire(queue: string, estimatedTokens = 0, signal?: AbortSignal): Promise<Lease> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // Fast path: nobody waits and every budget allows it — no waiter, no abort listener.
    if (this.#rotation.length === 0 && this.#inFlight < this.limit && this.#clock.monotonic() >= this.#pausedUntil) {
      if ((this.#requests?.waitFor(1) ?? 0) === 0 && (this.#tokens?.waitFor(estimatedTokens) ?? 0) === 0) {
        this.#requests?.spend(1);
        this.#tokens?.spend(estimatedTokens);
        this.#inFlight++;
        return Promise.resolve(this.#lease(estimatedTokens));
      }
    }
    return new Promise<Lease>((resolve, reject) => {
      if (signal) this.#watch(signal);
      let waiters = this.#queues.get(queue);
      if (!waiters) {
        waiters = [];
        this.#queues.set(queue, waiters);
        this.#rotation.push(queue);
      }
      waiters.push({ tokens: estimatedTokens, signal, grant: resolve, fail: reject });
      this.#pump();
    });
  }

  /**
   * Spends only `share` (0 < share ≤ 1) of the budgets from now on: a
   * cluster's nodes each take their part of budgets set for the cluster.
   */
  shareBudgets(share: number): void {
    if (!(share > 0 && share <= 1)) throw new RangeError(`a budget share is in (0, 1], got ${share}`);
    const { requestsPerMinute, tokensPerMinute } = this.#budgets;
    if (requestsPerMinute) this.#requests!.setRate(requestsPerMinute * share);
    if (tokensPerMinute) this.#tokens!.setRate(tokensPerMinute * share);
    this.#pump();
  }

  /** The target said 429: pause every grant for `delayMs` and halve the concurrency. */
  backOff(delayMs: number): void {
    this.#limit = Math.max(1, this.#limit / 2);
    this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.monotonic() + delayMs);
    this.#schedule(this.#pausedUntil);
  }

  /** A request succeeded: creep the concurrency back up (additive increase). */
  noteSuccess(): void {
    if (this.#limit < this.concurrency) this.#limit = Math.min(this.concurrency, this.#limit + 1 / this.#limit);
    this.#pump();
  }

  /** Rejects every waiter and stops timers. */
  close(reason: unknown = new Error("dispatcher closed")): void {
    this.#clock.clearTimeout(this.#timer);
    for (const waiters of this.#queues.values()) for (const waiter of waiters) waiter.fail(reason);
    this.#queues.clear();
    this.#rotation = [];
  }

  /** Makes `signal`'s abort fail every waiter that passed it, through one listener per signal. */
  #watch(signal: AbortSignal) {
    if (this.#watched.has(signal)) return;
    this.#watched.add(signal);
    signal.addEventListener("abort", () => {
      for (const [queue, waiters] of [...this.#queues]) {
        const kept = waiters.filter((waiter) => waiter.signal !== signal);
        if (kept.length === waiters.length) continue;
        for (const waiter of waiters) if (waiter.signal === signal) waiter.fail(signal.reason);
        if (kept.length) this.#queues.set(queue, kept);
        else this.#dropQueue(queue);
      }
    }, { once: true });
  }

  #dropQueue(queue: string) {
    this.#queues.delete(queue);
    const at = this.#rotation.indexOf(queue);
    this.#rotation.splice(at, 1);
    if (at < this.#next) this.#next--;
    if (this.#next >= this.#rotation.length) this.#next = 0;
  }

  #pump() {
    while (this.#rotation.length && this.#inFlight < this.limit) {
      const now = this.#clock.monotonic();
      if (now < this.#pausedUntil) return this.#schedule(this.#pausedUntil);
      if (this.#next >= this.#rotation.length) this.#next = 0;
      const queue = this.#rotation[this.#next];
      const waiters = this.#queues.get(queue)!;
      const waiter = waiters[0];
      const wait = Math.max(this.#requests?.waitFor(1) ?? 0, this.#tokens?.waitFor(waiter.tokens) ?? 0);
      if (wait > 0) return this.#schedule(now + wait);
      waiters.shift();
      this.#requests?.spend(1);
      this.#tokens?.spend(waiter.tokens);
      this.#inFlight++;
      if (waiters.length) this.#next++;
      else this.#dropQueue(queue);
      waiter.grant(this.#lease(waiter.tokens));
    }
  }

  #lease(estimated: number): Lease {
    let released = false;
    return {
      release: (actualTokens) => {
        if (released) return;
        released = true;
        this.#inFlight--;
        if (this.#tokens && actualTokens !== undefined && actualTokens > 0) {
          const difference = actualTokens - estimated;
          if (difference > 0) this.#tokens.spend(difference);
          else this.#tokens.refund(-difference);
        }
        this.#pump();
      },
    };
  }

  #schedule(at: number) {
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      this.#pump();
    }, Math.max(0, at - this.#clock.monotonic()));
  }
}

/** An engine's dispatcher, from the engine's options (32 requests in flight by default). */
export function dispatcherFor(
  options: { concurrency?: number; requestsPerMinute?: number; tokensPerMinute?: number },
  clock: Clock,
): Dispatcher {
  return new Dispatcher({
    concurrency: options.concurrency ?? 32,
    requestsPerMinute: options.requestsPerMinute,
    tokensPerMinute: options.tokensPerMinute,
    clock,
  });
}
