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

/**
 * The delay a server asked for, in ms: `retry-after-ms`, or `Retry-After` in
 * seconds or as an HTTP date. Null when absent or unreadable.
 *
 * @example
 * ```ts
 * retryAfterMs(new Headers({ "retry-after": "2" })); // 2000
 * ```
 */
export function retryAfterMs(headers: { get(name: string): string | null }, now: number = Date.now()): number | null {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = headers.get("retry-after")?.trim();
  if (!value) return null;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}
