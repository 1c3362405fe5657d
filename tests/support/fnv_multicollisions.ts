/**
 * Ids that all share one FNV-1a hash, built as a tenant could build them:
 * k pairs of 4-character blocks, each pair colliding from the state the blocks
 * before it leave, chained, give 2^k ids of 4k characters with one hash.
 *
 * @module
 */

const ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

/** FNV-1a (32 bits) of an ASCII string, from a given state. */
export function fnv1a(text: string, state = 0x811c9dc5): number {
  let hash = state;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** 2^k distinct ids with one FNV-1a hash; the same ones for the same k and seed. */
export function fnvMulticollisions(k: number, seed = 1): string[] {
  let random = seed >>> 0;
  const next = () => (random = (Math.imul(random, 1664525) + 1013904223) >>> 0) >>> 26;
  const pairs: [string, string][] = [];
  let state = 0x811c9dc5;
  while (pairs.length < k) {
    // A birthday search: about 80,000 blocks until two share the 32-bit state they lead to.
    const seen = new Map<number, string>();
    for (;;) {
      const block = ALPHABET[next()] + ALPHABET[next()] + ALPHABET[next()] + ALPHABET[next()];
      const hash = fnv1a(block, state);
      const other = seen.get(hash);
      if (other !== undefined && other !== block) {
        pairs.push([other, block]);
        state = hash;
        break;
      }
      seen.set(hash, block);
    }
  }
  let ids = [""];
  for (const [a, b] of pairs) ids = ids.flatMap((id) => [id + a, id + b]);
  return ids;
}

/** As many random ids as `ids`, each as long as its counterpart. */
export function randomIdsLike(ids: readonly string[], seed = 2): string[] {
  let random = seed >>> 0;
  const next = () => (random = (Math.imul(random, 1664525) + 1013904223) >>> 0) >>> 26;
  return ids.map((id) => Array.from({ length: id.length }, () => ALPHABET[next()]).join(""));
}
