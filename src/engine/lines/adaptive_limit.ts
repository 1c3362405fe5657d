/**
 * An upstream's limit on requests in flight, adapted to its answers by
 * additive increase and multiplicative decrease (as TCP's congestion window;
 * llm-d's batch gateway does the same): each success adds 1 / limit, so a
 * limit's worth of successes adds one request; an overload takes a tenth off.
 * A tenth rather than TCP's half: against a server that refuses above N in
 * flight, a shallow sawtooth stays close to N where halving would spend much
 * of its time far below it (BENCHMARKS.md, benchmark 13).
 *
 * @module
 */

/** How an upstream answered one request, as its limit reads it. */
export type AnswerKind = "success" | "overloaded" | "other";

/** Options for {@link AdaptiveLimit}. */
export interface AdaptiveLimitOptions {
  /** False: the limit stays at its most. */
  adaptive?: boolean;
  /**
   * Recent latency past this many times the long-run average counts as an overload
   * (the server started queueing): 2 by default, 0 to ignore latency.
   */
  latencyTolerance?: number;
}

/** Weight of each answer in the recent latency (about the last five answers). */
const RECENT_WEIGHT = 0.2;
/**
 * Weight of each answer in the long-run latency (about the last fifty): long
 * enough to see a sudden rise, short enough to follow a change of work (longer
 * prompts) before the limit has fallen far.
 */
const LONG_RUN_WEIGHT = 0.02;
/** Answers seen before latency is judged at all. */
const LATENCY_SAMPLES = 20;
/**
 * Latencies below this are never a sign of queueing: a fast upstream's jitter
 * (a collection pause, a busy core) would otherwise throttle it.
 */
const LATENCY_FLOOR_MS = 50;
/** Each overload keeps this much of the limit. */
const DECREASE = 0.9;
/**
 * Near the limit at which it was last refused, the limit grows this many times
 * slower: the server said where its edge is, and each crossing costs a refusal.
 */
const NEAR_EDGE_SLOWDOWN = 4;

/**
 * The limit of one upstream. Call {@link sent} when a request goes out and
 * {@link answered} with what came back; read {@link value}.
 *
 * @example
 * ```ts
 * const limit = new AdaptiveLimit(32);
 * const ticket = limit.sent();
 * limit.answered(ticket, "overloaded", 120); // a 429: the limit falls to 28
 * ```
 */
export class AdaptiveLimit {
  readonly max: number;
  readonly #adaptive: boolean;
  readonly #tolerance: number;
  #limit: number;
  #sent = 0;
  /** Requests sent before this one were in flight at the last decrease: their answers do not decrease it again. */
  #decreasedAt = 0;
  /** The limit at the last overload: where the server's edge was. */
  #edge = Infinity;
  #recent = 0;
  #longRun = 0;
  #samples = 0;

  constructor(max: number, options: AdaptiveLimitOptions = {}) {
    this.max = max;
    this.#limit = max;
    this.#adaptive = options.adaptive ?? true;
    this.#tolerance = options.latencyTolerance ?? 2;
  }

  /** Requests allowed in flight now (at least 1). */
  get value(): number {
    return Math.max(1, Math.floor(this.#limit));
  }

  /** A request goes out: its ticket, for {@link answered}. */
  sent(): number {
    return ++this.#sent;
  }

  /** The request of `ticket` was answered after `latencyMs`. */
  answered(ticket: number, kind: AnswerKind, latencyMs: number): void {
    if (!this.#adaptive) return;
    if (kind === "success") {
      if (this.#samples++ === 0) this.#recent = this.#longRun = latencyMs;
      this.#recent += RECENT_WEIGHT * (latencyMs - this.#recent);
      this.#longRun += LONG_RUN_WEIGHT * (latencyMs - this.#longRun);
      if (this.#queueing()) kind = "overloaded";
      else if (this.#limit < this.max) {
        const step = this.#limit >= this.#edge - 1 ? 1 / (NEAR_EDGE_SLOWDOWN * this.#limit) : 1 / this.#limit;
        this.#limit = Math.min(this.max, this.#limit + step);
      }
    }
    if (kind !== "overloaded") return;
    if (ticket > this.#decreasedAt) {
      this.#edge = this.#limit;
      this.#limit = Math.max(1, this.#limit * DECREASE);
      this.#decreasedAt = this.#sent;
    } else {
      // Refused too, though sent before the last decrease: the server takes one fewer than that decrease allowed.
      this.#limit = Math.max(1, this.#limit - 1);
    }
  }

  #queueing(): boolean {
    return this.#tolerance > 0 && this.#samples >= LATENCY_SAMPLES && this.#recent >= LATENCY_FLOOR_MS &&
      this.#recent > this.#tolerance * this.#longRun;
  }
}
