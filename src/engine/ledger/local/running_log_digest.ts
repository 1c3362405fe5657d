/**
 * A log's digest, kept up while its appends are made, so that ending a batch
 * does not read its logs back to hash them.
 *
 * It knows a log only when it has seen every byte of it from the first: one
 * that starts following a log that already holds records (a batch resumed after
 * a restart) knows nothing, and the log is then hashed from its bytes on disk.
 *
 * @module
 */
import { DEFAULT_MARK_EVERY, type MarkedDigest, MarkingSha256 } from "../../../integrity/digest_marks.ts";
import type { AppendResult, Storage } from "../../../storage/types.ts";

const encoder = new TextEncoder();
const NEWLINE = 10;
/**
 * Bytes encoded between two hash updates. Records are encoded into this one
 * buffer, not joined and encoded whole, which would make two more copies of
 * each group (up to ~9 MB for 2,048 results of 4 kB lines).
 */
const SCRATCH_BYTES = 64 * 1024;

/**
 * Hashes a log's appends as they are made, in order.
 *
 * @example
 * ```ts
 * const digest = new RunningLogDigest();
 * digest.follow(records, await storage.logs.append(key, records));
 * digest.finish(); // the log's digest, or null when an append was missed
 * ```
 */
export class RunningLogDigest {
  #hash: MarkingSha256 | null = new MarkingSha256(DEFAULT_MARK_EVERY);
  #bytes = 0;
  #finished: MarkedDigest | null = null;
  #scratch: Uint8Array | null = null;

  /**
   * Takes the records of a durable append and where the store put them. The
   * store writes each record followed by `\n` (the `LogStore` contract); an
   * append that does not start where the last one ended, or whose bytes are
   * not those, makes the digest unknown.
   */
  follow(records: readonly string[], { start, end }: AppendResult): void {
    const hash = this.#hash;
    if (hash === null) return;
    if (start !== this.#bytes) return this.lose();
    const scratch = this.#scratch ??= new Uint8Array(SCRATCH_BYTES);
    let filled = 0;
    let length = 0;
    for (const record of records) {
      let rest = record;
      for (;;) {
        const { read, written } = encoder.encodeInto(rest, scratch.subarray(filled));
        filled += written;
        length += written;
        if (read === rest.length && filled < scratch.length) break;
        hash.update(scratch.subarray(0, filled));
        filled = 0;
        if (read === rest.length) break;
        rest = rest.slice(read);
      }
      scratch[filled++] = NEWLINE;
      length++;
    }
    hash.update(scratch.subarray(0, filled));
    if (length !== end - start) return this.lose();
    this.#bytes = end;
  }

  /** Gives up on the log: an append's outcome is unknown. */
  lose(): void {
    this.#hash = null;
    this.#scratch = null;
  }

  /**
   * The digest of everything followed, when that is the whole log: the caller
   * compares `bytes` with the log's length. Null when an append was missed.
   * Ends the following (later appends make it unknown); may be asked again.
   */
  finish(): MarkedDigest | null {
    if (this.#finished === null && this.#hash !== null) {
      this.#finished = this.#hash.finish();
      this.lose();
    }
    return this.#finished;
  }
}

/** Reads a log back and hashes it: for a log its batch's writer did not write whole. */
export async function hashLog(storage: Storage, key: string): Promise<MarkedDigest> {
  const hash = new MarkingSha256(DEFAULT_MARK_EVERY);
  for await (const chunk of await storage.logs.read(key)) hash.update(chunk);
  return hash.finish();
}
