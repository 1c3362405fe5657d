/**
 * The replicas of one route: requests are spread over them (the one with
 * fewest requests in flight first), and a replica that keeps failing is taken
 * out by a circuit breaker: after `failures` failures in a row (no connection,
 * no answer in time, a 5xx) it gets nothing for a cooldown, then one request as
 * a probe; the probe's success puts it back, its failure doubles the cooldown.
 *
 * @module
 */
import type { Clock } from "../../shared/clock.ts";
import type { ReplicaState, Target } from "../types.ts";

/** Options of the circuit breakers. */
export interface BreakerOptions {
  /** Failures in a row that take a replica out (default 3). */
  failures?: number;
  /** First cooldown before a probe, in ms (default 2 s); doubled by each failed probe. */
  cooldownMs?: number;
  /** Longest cooldown, in ms (default 60 s). */
  maxCooldownMs?: number;
}


/** One replica: its target and its breaker. */
export class Replica {
  readonly url: string;
  readonly target: Target;
  inFlight = 0;
  failures = 0;
  /** When it may be probed (0: closed). */
  openUntil = 0;
  cooldownMs: number;
  probing = false;

  constructor(url: string, target: Target, cooldownMs: number) {
    this.url = url;
    this.target = target;
    this.cooldownMs = cooldownMs;
  }
}

/**
 * The replicas of a route and their breakers.
 *
 * @example
 * ```ts
 * const replicas = new ReplicaSet([["http://a/v1", targetA], ["http://b/v1", targetB]], systemClock);
 * const replica = replicas.pick(new Set())!;
 * replicas.started(replica);
 * replicas.finished(replica, true);
 * ```
 */
export class ReplicaSet {
  readonly replicas: readonly Replica[];
  readonly #clock: Clock;
  readonly #failures: number;
  readonly #cooldownMs: number;
  readonly #maxCooldownMs: number;
  /** Where ties start: spreads requests over equally loaded replicas. */
  #turn = 0;

  constructor(replicas: readonly (readonly [string, Target])[], clock: Clock, options: BreakerOptions = {}) {
    this.#clock = clock;
    this.#failures = options.failures ?? 3;
    this.#cooldownMs = options.cooldownMs ?? 2_000;
    this.#maxCooldownMs = options.maxCooldownMs ?? 60_000;
    this.replicas = replicas.map(([url, target]) => new Replica(url, target, this.#cooldownMs));
  }

  /**
   * The replica for the next request, not one of `tried`: the least loaded in
   * use (or due for its probe); when every one is out, the one due soonest (all
   * are down: a request there is the probe). Null when all were tried.
   */
  pick(tried: ReadonlySet<Replica>): Replica | null {
    const now = this.#clock.monotonic();
    const count = this.replicas.length;
    let best: Replica | null = null;
    let fallback: Replica | null = null;
    for (let i = 0; i < count; i++) {
      const replica = this.replicas[(this.#turn + i) % count];
      if (tried.has(replica)) continue;
      const usable = replica.openUntil === 0 || (now >= replica.openUntil && !replica.probing);
      if (usable) {
        if (!best || replica.inFlight < best.inFlight) best = replica;
      } else if (!fallback || replica.openUntil < fallback.openUntil) {
        fallback = replica;
      }
    }
    this.#turn = (this.#turn + 1) % count;
    return best ?? fallback;
  }

  /** A request goes to `replica`. */
  started(replica: Replica): void {
    replica.inFlight++;
    if (replica.openUntil !== 0) replica.probing = true;
  }

  /** `replica`'s request is over: `ok` false for a failure, null when it says nothing (aborted). */
  finished(replica: Replica, ok: boolean | null): void {
    replica.inFlight--;
    if (ok === null) {
      replica.probing = false;
      return;
    }
    if (ok) {
      replica.failures = 0;
      replica.openUntil = 0;
      replica.probing = false;
      replica.cooldownMs = this.#cooldownMs;
      return;
    }
    replica.failures++;
    if (replica.openUntil !== 0) {
      // A failed probe (or a failure while out): out again, for longer.
      if (replica.probing) replica.cooldownMs = Math.min(this.#maxCooldownMs, replica.cooldownMs * 2);
      replica.probing = false;
      replica.openUntil = this.#clock.monotonic() + replica.cooldownMs;
    } else if (replica.failures >= this.#failures) {
      replica.openUntil = this.#clock.monotonic() + replica.cooldownMs;
    }
  }

  /** Each replica's state. */
  states(): ReplicaState[] {
    const now = this.#clock.monotonic();
    return this.replicas.map((replica) => ({
      url: replica.url,
      breaker: replica.openUntil === 0 ? "closed" : now >= replica.openUntil ? "half-open" : "open",
      inFlight: replica.inFlight,
      failuresInARow: replica.failures,
      retryInMs: replica.openUntil === 0 ? null : Math.max(0, Math.ceil(replica.openUntil - now)),
    }));
  }
}
