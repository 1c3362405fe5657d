/**
 * Admission control toward the target: one global limit on requests in flight,
 * optional requests-per-minute and tokens-per-minute budgets (global, and by
 * model in `model_budgets.ts`), each upstream's own adaptive limit, budgets and
 * pauses (`upstream_lanes.ts`), and the order of grants between the batches
 * waiting (see {@link Dispatcher}).
 *
 * @module
 */
import { type Clock, type ClockTimer, systemClock } from "../../shared/clock.ts";
import { type ModelBudget, ModelBudgets } from "./model_budgets.ts";
import { TokenBucket } from "./token_bucket.ts";
import { type Lane, type LaneOf, Lanes, type LaneState, type UpstreamAnswer } from "./upstream_lanes.ts";

export type { LaneOf, LaneState, ModelBudget, UpstreamAnswer };

/** Options for {@link Dispatcher}. */
export interface DispatcherOptions {
  /** Most requests in flight at once. */
  concurrency: number;
  /** Requests-per-minute budget (none when absent). */
  requestsPerMinute?: number;
  /** Tokens-per-minute budget (none when absent); spent by estimate, corrected by reported usage. */
  tokensPerMinute?: number;
  /** Budgets by model (each model matching a rule has its own), beside the global ones. */
  modelBudgets?: readonly ModelBudget[];
  /** Each owner's share of the grants within a priority, relative to the others' (1 when absent). */
  weightOf?: (owner: string) => number;
  /** The upstream of each model's requests, with its own limits (absent: one upstream, limited by `concurrency`). */
  lanes?: LaneOf;
  /** Time for budgets and pauses (injectable for tests). */
  clock?: Clock;
}

/** A queue of requests (a batch's): who owns it, its priority, and its own limit on requests in flight. */
export interface QueueSpec {
  id: string;
  owner: string;
  /** Higher goes first. */
  priority: number;
  /** Most of its requests in flight at once (null: only the global limit). */
  maxInFlight: number | null;
}

/** Permission to send one request; release it when the request is over. */
export interface Lease {
  /**
   * Frees the slot; `actualTokens` corrects the token budgets by what the
   * response reported, and `answer` (absent when none came) adapts its upstream's limit.
   */
  release(actualTokens?: number, answer?: UpstreamAnswer): void;
}

interface Waiter {
  tokens: number;
  model: string | undefined;
  lane: Lane;
  signal: AbortSignal | undefined;
  grant(lease: Lease): void;
  fail(reason: unknown): void;
}

interface Queue {
  spec: QueueSpec;
  waiters: Waiter[];
  inFlight: number;
  /** When it was last granted (a grant counter): the queue served longest ago goes first among equals. */
  servedAt: number;
}

interface Owner {
  weight: number;
  /** Its virtual time: grants it had, each counting 1 / weight (stride scheduling). */
  pass: number;
  /** Its queues with waiters. */
  waiting: number;
}

/**
 * Grants leases in this order: the highest priority first; within a
 * priority, owners share by weight (stride scheduling: each grant advances its
 * owner's virtual time by 1 / weight, the owner furthest behind goes next, and
 * an owner that had nothing waiting starts at the others' time rather than
 * with credit saved up); within an owner, its batches in rotation. A queue at
 * its own limit waits, and the others go on; so does one whose next request's
 * upstream is full, paused or out of budget.
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
  #inFlight = 0;
  #queues = new Map<string, Queue>();
  #owners = new Map<string, Owner>();
  /** Queues with waiters. */
  #waiting = 0;
  #grants = 0;
  /** The virtual time of the last grant: where an owner that starts waiting again begins. */
  #virtualTime = 0;
  #timer: ClockTimer | undefined;
  #timerAt = Infinity;
  #requests: TokenBucket | undefined;
  #tokens: TokenBucket | undefined;
  #models: ModelBudgets;
  #lanes: Lanes;
  #budgets: { requestsPerMinute?: number; tokensPerMinute?: number };
  #weightOf: (owner: string) => number;
  #clock: Clock;
  /** Signals with the one listener that fails their waiters (a batch run passes the same signal every time). */
  #watched = new WeakSet<AbortSignal>();

  constructor(options: DispatcherOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${options.concurrency}`);
    }
    this.concurrency = options.concurrency;
    this.#clock = options.clock ?? systemClock;
    this.#lanes = new Lanes(options.lanes, options.concurrency, this.#clock);
    this.#weightOf = options.weightOf ?? (() => 1);
    this.#budgets = { requestsPerMinute: options.requestsPerMinute, tokensPerMinute: options.tokensPerMinute };
    if (options.requestsPerMinute) this.#requests = new TokenBucket(options.requestsPerMinute, this.#clock);
    if (options.tokensPerMinute) this.#tokens = new TokenBucket(options.tokensPerMinute, this.#clock);
    this.#models = new ModelBudgets(options.modelBudgets ?? [], this.#clock);
  }

  /** Requests in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Each upstream's requests in flight and current limit. */
  upstreams(): LaneState[] {
    return this.#lanes.states();
  }

  /**
   * Waits for a slot for a request of `model` in `queue` (a name alone: owner
   * "", priority 0, no limit of its own); rejects with the signal's reason
   * when aborted first.
   */
  acquire(queue: QueueSpec | string, estimatedTokens = 0, signal?: AbortSignal, model?: string): Promise<Lease> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const spec = typeof queue === "string" ? { id: queue, owner: "", priority: 0, maxInFlight: null } : queue;
    const found = this.#queueOf(spec);
    const lane = this.#lanes.of(model);
    // Fast path: nobody waits and every limit and budget allows it — no waiter, no abort listener.
    if (this.#waiting === 0 && this.#inFlight < this.concurrency && this.#underOwnLimit(found) && !lane.full) {
      if (
        (this.#requests?.waitFor(1) ?? 0) === 0 && (this.#tokens?.waitFor(estimatedTokens) ?? 0) === 0 &&
        this.#models.waitFor(model, estimatedTokens) === 0 && lane.waitFor(estimatedTokens) === 0
      ) {
        return Promise.resolve(this.#grant(found, { tokens: estimatedTokens, model, lane }));
      }
    }
    return new Promise<Lease>((resolve, reject) => {
      if (signal) this.#watch(signal);
      if (found.waiters.length === 0) this.#startWaiting(found);
      found.waiters.push({ tokens: estimatedTokens, model, lane, signal, grant: resolve, fail: reject });
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
    this.#models.share(share);
    this.#lanes.share(share);
    this.#pump();
  }

  /** Rejects every waiter and stops timers. */
  close(reason: unknown = new Error("dispatcher closed")): void {
    this.#clock.clearTimeout(this.#timer);
    for (const queue of this.#queues.values()) {
      const waiters = queue.waiters;
      queue.waiters = [];
      for (const waiter of waiters) waiter.fail(reason);
    }
    this.#queues.clear();
    this.#owners.clear();
    this.#waiting = 0;
  }

  #queueOf(spec: QueueSpec): Queue {
    let queue = this.#queues.get(spec.id);
    if (!queue) {
      queue = { spec, waiters: [], inFlight: 0, servedAt: 0 };
      this.#queues.set(spec.id, queue);
    } else if (queue.spec !== spec) {
      // A batch's priority or limit can change between its slices (the latest one counts).
      queue.spec = spec;
    }
    return queue;
  }

  #underOwnLimit(queue: Queue): boolean {
    return queue.spec.maxInFlight === null || queue.inFlight < queue.spec.maxInFlight;
  }

  #startWaiting(queue: Queue) {
    this.#waiting++;
    const name = queue.spec.owner;
    let owner = this.#owners.get(name);
    if (!owner) {
      owner = { weight: Math.max(Number.MIN_VALUE, this.#weightOf(name)), pass: this.#virtualTime, waiting: 0 };
      this.#owners.set(name, owner);
    }
    // No credit for the time it had nothing waiting.
    if (owner.waiting++ === 0) owner.pass = Math.max(owner.pass, this.#virtualTime);
  }

  #stopWaiting(queue: Queue) {
    this.#waiting--;
    const owner = this.#owners.get(queue.spec.owner)!;
    owner.waiting--;
    this.#forgetIfIdle(queue);
  }

  /** Drops a queue with nothing waiting or in flight (and its owner once it has no queue). */
  #forgetIfIdle(queue: Queue) {
    if (queue.waiters.length || queue.inFlight) return;
    this.#queues.delete(queue.spec.id);
    const owner = this.#owners.get(queue.spec.owner);
    if (owner && owner.waiting === 0 && owner.pass <= this.#virtualTime) this.#owners.delete(queue.spec.owner);
  }

  /** Makes `signal`'s abort fail every waiter that passed it, through one listener per signal. */
  #watch(signal: AbortSignal) {
    if (this.#watched.has(signal)) return;
    this.#watched.add(signal);
    signal.addEventListener("abort", () => {
      for (const queue of [...this.#queues.values()]) {
        const waiters = queue.waiters;
        if (!waiters.some((waiter) => waiter.signal === signal)) continue;
        queue.waiters = waiters.filter((waiter) => waiter.signal !== signal);
        for (const waiter of waiters) if (waiter.signal === signal) waiter.fail(signal.reason);
        if (queue.waiters.length === 0) this.#stopWaiting(queue);
      }
      this.#pump();
    }, { once: true });
  }

  /**
   * The queue whose head waiter goes next (see the class's comment), or null
   * when every waiting queue is at its limit or its head's model or upstream
   * cannot take it yet (then `wait` is how long until the first of those can;
   * Infinity when only a release can help).
   */
  #next(): { queue: Queue | null; wait: number } {
    let best: Queue | null = null;
    let bestPass = 0;
    let wait = Infinity;
    for (const queue of this.#queues.values()) {
      if (queue.waiters.length === 0 || !this.#underOwnLimit(queue)) continue;
      const pass = this.#owners.get(queue.spec.owner)!.pass;
      if (
        best === null ||
        queue.spec.priority > best.spec.priority ||
        (queue.spec.priority === best.spec.priority &&
          (pass < bestPass || (pass === bestPass && queue.servedAt < best.servedAt)))
      ) {
        // A model out of budget or an upstream full, paused or out of budget waits; the others go on.
        const head = queue.waiters[0];
        if (head.lane.full) continue;
        const headWait = Math.max(this.#models.any ? this.#models.waitFor(head.model, head.tokens) : 0, head.lane.waitFor(head.tokens));
        if (headWait > 0) {
          wait = Math.min(wait, headWait);
          continue;
        }
        best = queue;
        bestPass = pass;
      }
    }
    return { queue: best, wait };
  }

  #pump() {
    while (this.#waiting && this.#inFlight < this.concurrency) {
      const now = this.#clock.monotonic();
      const next = this.#next();
      const queue = next.queue;
      if (!queue) return next.wait < Infinity ? this.#schedule(now + next.wait) : undefined;
      const waiter = queue.waiters[0];
      const wait = Math.max(this.#requests?.waitFor(1) ?? 0, this.#tokens?.waitFor(waiter.tokens) ?? 0);
      if (wait > 0) return this.#schedule(now + wait);
      queue.waiters.shift();
      const lease = this.#grant(queue, waiter);
      if (queue.waiters.length === 0) this.#stopWaiting(queue);
      waiter.grant(lease);
    }
  }

  #grant(queue: Queue, { tokens: estimated, model, lane }: Pick<Waiter, "tokens" | "model" | "lane">): Lease {
    this.#requests?.spend(1);
    this.#tokens?.spend(estimated);
    this.#models.spend(model, estimated);
    const ticket = lane.spend(estimated);
    this.#inFlight++;
    queue.inFlight++;
    queue.servedAt = ++this.#grants;
    const owner = this.#owners.get(queue.spec.owner);
    if (owner) {
      this.#virtualTime = Math.max(this.#virtualTime, owner.pass);
      owner.pass += 1 / owner.weight;
    }
    let released = false;
    return {
      release: (actualTokens, answer) => {
        if (released) return;
        released = true;
        this.#inFlight--;
        queue.inFlight--;
        lane.release(ticket, estimated, actualTokens, answer);
        this.#forgetIfIdle(queue);
        if (actualTokens !== undefined && actualTokens > 0) {
          const difference = actualTokens - estimated;
          if (difference > 0) this.#tokens?.spend(difference);
          else this.#tokens?.refund(-difference);
          this.#models.correct(model, estimated, actualTokens);
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
  options: {
    concurrency?: number;
    requestsPerMinute?: number;
    tokensPerMinute?: number;
    modelBudgets?: readonly ModelBudget[];
    ownerWeights?: ReadonlyMap<string, number>;
  },
  clock: Clock,
  lanes?: LaneOf,
): Dispatcher {
  const weights = options.ownerWeights;
  return new Dispatcher({
    concurrency: options.concurrency ?? 32,
    weightOf: weights ? (owner) => weights.get(owner) ?? 1 : undefined,
    requestsPerMinute: options.requestsPerMinute,
    tokensPerMinute: options.tokensPerMinute,
    modelBudgets: options.modelBudgets,
    lanes,
    clock,
  });
}
