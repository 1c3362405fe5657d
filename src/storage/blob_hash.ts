/**
 * The hashing every adapter's `BlobStore.put` does on the way: SHA-256 and a
 * byte count, plus digest marks when the caller asked for them.
 *
 * @module
 */
import { MarkingSha256 } from "../integrity/digest_marks.ts";
import type { BlobInfo, PutBlobOptions } from "./types.ts";

/**
 * Starts the hash of a blob being put.
 *
 * @example
 * ```ts
 * const hash = startBlobHash(options);
 * for (const chunk of chunks) hash.update(chunk);
 * return finishBlobHash(key, hash, options);
 * ```
 */
export function startBlobHash(options: PutBlobOptions): MarkingSha256 {
  // Without markEvery, a mark is never reached.
  return new MarkingSha256(options.markEvery ?? Number.MAX_SAFE_INTEGER);
}

/** The `BlobInfo` of a finished put; marks only when they were asked for. */
export function finishBlobHash(key: string, hash: MarkingSha256, options: PutBlobOptions): BlobInfo {
  const { sha256, bytes, marks } = hash.finish();
  return options.markEvery === undefined ? { key, bytes, sha256 } : { key, bytes, sha256, marks };
}
