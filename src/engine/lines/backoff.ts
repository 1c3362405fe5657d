/**
 * When to retry a request and how long to wait first.
 *
 * @module
 */

/** Statuses worth retrying: timeouts, rate limits and transient server errors. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** Backoff settings. */
export interface BackoffPolicy {
  /** Delay scale of the first retry. */
  baseMs: number;
  /** Cap of any single delay. */
  maxMs: number;
}

/** The default backoff: 500 ms doubling, capped at 60 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 60_000 };

/**
 * Capped exponential backoff with full jitter for retry number `attempt` (0-based).
 *
 * @example
 * ```ts
 * backoffDelay(3, DEFAULT_BACKOFF); // somewhere in [0, 4000) ms
 * ```
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** attempt);
  return Math.floor(ceiling / 2 + random() * (ceiling / 2));
}
