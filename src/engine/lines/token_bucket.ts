/**
 * A budget of requests or tokens, refilled continuously.
 *
 * @module
 */
import type { Clock } from "../../shared/clock.ts";

/** A budget refilled continuously at `perMinute` units a minute, holding at most a minute's worth. */
export class TokenBucket {
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
