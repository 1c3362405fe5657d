/**
 * The hashing every adapter's `BlobStore.put` does on the way: SHA-256 and a
 * byte count, plus digest marks when the caller asked for them; or, when the
 * caller gave a hasher, what it hands that hasher and takes back from it.
 *
 * @module
 */
import { type MarkedDigest, MarkingSha256 } from "../integrity/digest_marks.ts";
import type { BlobHasher, BlobInfo, PutBlobOptions } from "./types.ts";

/**
 * The hashing of a blob being put: by its `hasher` when the caller gave one,
 * else in this thread.
 *
 * @example
 * ```ts
 * const hash = new BlobHash(options);
 * for (const chunk of chunks) await hash.update(chunk);
 * return await hash.finish(key, () => hashAgain(written, options));
 * ```
 */
export class BlobHash {
  readonly #markEvery: number | undefined;
  /** Exactly one of the two hashes the put. */
  readonly #hasher: BlobHasher | null;
  readonly #local: MarkingSha256 | null;

  constructor(options: PutBlobOptions) {
    this.#markEvery = options.markEvery;
    this.#hasher = options.hasher ?? null;
    this.#local = this.#hasher ? null : startMarkingHash(options);
  }

  /** Hashes the next bytes; a promise when the hasher asks the put to wait. */
  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#hasher) return this.#hasher.update(chunk);
    this.#local!.update(chunk);
    return undefined;
  }

  /**
   * The `BlobInfo` of the finished put (marks only when asked for). When the
   * hasher could not finish, `hashWritten` hashes what the put wrote instead.
   */
  async finish(key: string, hashWritten: () => Promise<MarkedDigest>): Promise<BlobInfo> {
    const digest = this.#hasher ? (await this.#hasher.finish()) ?? (await hashWritten()) : this.#local!.finish();
    const { sha256, bytes, marks } = digest;
    return this.#markEvery === undefined ? { key, bytes, sha256 } : { key, bytes, sha256, marks };
  }
}

/** A fresh marking hash for a put's options. */
export function startMarkingHash(options: PutBlobOptions): MarkingSha256 {
  // Without markEvery, a mark is never reached.
  return new MarkingSha256(options.markEvery ?? Number.MAX_SAFE_INTEGER);
}
