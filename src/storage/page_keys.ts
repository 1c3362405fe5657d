/**
 * Key-order paging shared by the adapters.
 *
 * @module
 */
import type { KeyPage, ListOptions } from "./types.ts";

/** Default page size of `list` calls. */
export const DEFAULT_LIST_LIMIT = 1000;

/**
 * Picks one page from keys sorted ascending, honouring `prefix`, `after`,
 * `limit` and `reverse`.
 *
 * @example
 * ```ts
 * pageKeys(["a/1", "a/2", "b/1"], "a/", { limit: 1 }); // { keys: ["a/1"], more: true }
 * ```
 */
export function pageKeys(sortedKeys: readonly string[], prefix: string, options: ListOptions = {}): KeyPage {
  const limit = options.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  let candidates = sortedKeys.filter((key) => key.startsWith(prefix));
  if (options.reverse) candidates = candidates.reverse();
  const after = options.after;
  if (after !== undefined) {
    candidates = candidates.filter((key) => options.reverse ? key < after : key > after);
  }
  return { keys: candidates.slice(0, limit), more: candidates.length > limit };
}
