/**
 * The dispatcher's lanes: one per upstream a target sends to (one for a single
 * upstream), each with its own adaptive limit on requests in flight, its own
 * requests and tokens per minute, and its own pause when it asked for one
 * (Retry-After). A full or paused lane holds only its own requests back.
 *
 * @module
 */
import type { Clock } from "../../shared/clock.ts";
import { AdaptiveLimit, type AnswerKind } from "./adaptive_limit.ts";
import { TokenBucket } from "./token_bucket.ts";
import type { UpstreamLimits } from "../../targets/types.ts";

export type { AnswerKind };

/** An upstream's limits, as a target declares them. */
export type LaneSpec = UpstreamLimits;

/** How one request went, for its lane. */
export interface UpstreamAnswer {
  kind: AnswerKind;
  latencyMs: number;
  /** A pause the upstream asked for (Retry-After), in ms. */
  retryAfterMs?: number | null;
}

/** An upstream's state at the dispatcher. */
export interface LaneState {
  id: string;
  inFlight: number;
  limit: number;
  maxLimit: number;
}

/** One upstream at the dispatcher. */
export class Lane {
  readonly spec: LaneSpec;
  readonly limit: AdaptiveLimit;
  inFlight = 0;
  #requests: TokenBucket | undefined;
  #tokens: TokenBucket | undefined;
  #pausedUntil = 0;
  readonly #clock: Clock;

  constructor(spec: LaneSpec, concurrency: number, clock: Clock, share: number) {
    this.spec = spec;
    this.#clock = clock;
    this.limit = new AdaptiveLimit(Math.min(spec.concurrency ?? concurrency, concurrency), { adaptive: spec.adaptive });
    if (spec.requestsPerMinute) this.#requests = new TokenBucket(spec.requestsPerMinute * share, clock);
    if (spec.tokensPerMinute) this.#tokens = new TokenBucket(spec.tokensPerMinute * share, clock);
  }

  /** Whether it is at its limit (a release wakes its waiters). */
  get full(): boolean {
    return this.inFlight >= this.limit.value;
  }

  /** Milliseconds until a request of `tokens` may go (0: now), paused or out of budget. */
  waitFor(tokens: number): number {
    let wait = 0;
    // Read the clock only while a pause was asked for: this runs for every line.
    if (this.#pausedUntil !== 0) {
      wait = this.#pausedUntil - this.#clock.monotonic();
      if (wait <= 0) wait = this.#pausedUntil = 0;
    }
    if (this.#requests) wait = Math.max(wait, this.#requests.waitFor(1));
    if (this.#tokens) wait = Math.max(wait, this.#tokens.waitFor(tokens));
    return wait;
  }

  /** A request goes: its ticket for {@link answered}. */
  spend(tokens: number): number {
    this.#requests?.spend(1);
    this.#tokens?.spend(tokens);
    this.inFlight++;
    return this.limit.sent();
  }

  /** The request of `ticket` is over; `answer` (when it got one) adapts the limit. */
  release(ticket: number, estimated: number, actualTokens: number | undefined, answer: UpstreamAnswer | undefined) {
    this.inFlight--;
    if (actualTokens !== undefined && actualTokens > 0) {
      if (actualTokens > estimated) this.#tokens?.spend(actualTokens - estimated);
      else this.#tokens?.refund(estimated - actualTokens);
    }
    if (!answer) return;
    this.limit.answered(ticket, answer.kind, answer.latencyMs);
    if (answer.kind === "overloaded" && answer.retryAfterMs) {
      this.#pausedUntil = Math.max(this.#pausedUntil, this.#clock.monotonic() + answer.retryAfterMs);
    }
  }

  /** Spends only `share` of its budgets from now on. */
  share(share: number) {
    if (this.spec.requestsPerMinute) this.#requests!.setRate(this.spec.requestsPerMinute * share);
    if (this.spec.tokensPerMinute) this.#tokens!.setRate(this.spec.tokensPerMinute * share);
  }

  state(): LaneState {
    return { id: this.spec.id, inFlight: this.inFlight, limit: this.limit.value, maxLimit: this.limit.max };
  }
}

/** Which upstream a model's requests go to (null: the default one). */
export type LaneOf = (model: string | undefined) => LaneSpec | null;

/** Every lane, found by model (remembered: a batch names a handful). */
export class Lanes {
  readonly #laneOf: LaneOf;
  readonly #concurrency: number;
  readonly #clock: Clock;
  readonly #byId = new Map<string, Lane>();
  readonly #byModel = new Map<string | undefined, Lane>();
  #share = 1;

  constructor(laneOf: LaneOf | undefined, concurrency: number, clock: Clock) {
    this.#laneOf = laneOf ?? (() => null);
    this.#concurrency = concurrency;
    this.#clock = clock;
  }

  /** The lane of `model`'s requests. */
  of(model: string | undefined): Lane {
    let lane = this.#byModel.get(model);
    if (lane) return lane;
    const spec = this.#laneOf(model) ?? { id: "default" };
    lane = this.#byId.get(spec.id);
    if (!lane) {
      lane = new Lane(spec, this.#concurrency, this.#clock, this.#share);
      this.#byId.set(spec.id, lane);
    }
    if (this.#byModel.size < 4096) this.#byModel.set(model, lane);
    return lane;
  }

  /** Spends only `share` of every lane's budgets from now on. */
  share(share: number) {
    this.#share = share;
    for (const lane of this.#byId.values()) lane.share(share);
  }

  /** Each lane's state. */
  states(): LaneState[] {
    return [...this.#byId.values()].map((lane) => lane.state());
  }
}
