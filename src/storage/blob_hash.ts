/**
 * The hashing every adapter's `BlobStore.put` does on the way: SHA-256 and a
 * byte count, plus digest marks when the caller asked for them; or, when the
 * caller gave a hasher, what it hands that hasher and takes back from it.
 *
 * @module
 */
import { type MarkedDigest, MarkingSha256 } from "../integrity/digest_marks.ts";
import type { BlobInfo, PutBlobOptions } from "./types.ts";

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
  readonly #options: PutBlobOptions;
  readonly #local: MarkingSha256 | null;

  constructor(options: PutBlobOptions) {
    this.#options = options;
    this.#local = options.hasher ? null : startMarkingHash(options);
  }

  /** Hashes the next bytes; a promise when the hasher asks the put to wait. */
  update(chunk: Uint8Array): Promise<void> | undefined {
    if (this.#local) {
      this.#local.update(chunk);
      return undefined;
    }
    return this.#options.hasher!.update(chunk);
  }

  /**
   * The `BlobInfo` of the finished put (marks only when asked for). When the
   * hasher could not finish, `hashWritten` hashes what the put wrote instead.
   */
  async finish(key: string, hashWritten: () => Promise<MarkedDigest>): Promise<BlobInfo> {
    const digest = this.#local ? this.#local.finish() : (await this.#options.hasher!.finish()) ?? (await hashWritten());
    const { sha256, bytes, marks } = digest;
    return this.#options.markEvery === undefined ? { key, bytes, sha256 } : { key, bytes, sha256, marks };
  }
}

/** A fresh marking hash for a put's options. */
export function startMarkingHash(options: PutBlobOptions): MarkingSha256 {
  // Without markEvery, a mark is never reached.
  return new MarkingSha256(options.markEvery ?? Number.MAX_SAFE_INTEGER);
}
