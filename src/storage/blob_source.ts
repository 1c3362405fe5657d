/**
 * What every adapter's `BlobStore.put` does with its source before it stores a
 * byte: reads it chunk by chunk, enforces `maxBytes`, and hashes on the way.
 *
 * @module
 */
import type { BlobHash } from "./blob_hash.ts";
import { StorageError } from "./errors.ts";
import type { PutBlobOptions } from "./types.ts";

/**
 * Carries an error the put's *source* raised (a client that went away, an
 * upload's own timeout), so that the store gives it back unchanged rather than
 * as a storage failure.
 */
export class BlobSourceError extends Error {
  override name = "BlobSourceError";
  constructor(readonly error: unknown) {
    super("the blob's source failed", { cause: error });
  }
}

/**
 * Reads `source` and hands each chunk to `store`, after checking the size
 * limit and hashing it. Returns the byte count.
 *
 * @throws {StorageError} `too_large` past `options.maxBytes`
 * @throws {BlobSourceError} when the source fails (the caller rethrows its `error`)
 * @example
 * ```ts
 * const bytes = await pumpBlobSource(key, source, options, hash, (chunk) => void chunks.push(chunk));
 * ```
 */
export async function pumpBlobSource(
  key: string,
  source: ReadableStream<Uint8Array> | Uint8Array,
  options: PutBlobOptions,
  hash: BlobHash,
  store: (chunk: Uint8Array) => Promise<void> | void,
): Promise<number> {
  let bytes = 0;
  const take = async (chunk: Uint8Array) => {
    bytes += chunk.length;
    if (options.maxBytes !== undefined && bytes > options.maxBytes) {
      throw new StorageError("too_large", `blob ${key} exceeds ${options.maxBytes} bytes`, { key });
    }
    const wait = hash.update(chunk);
    if (wait) await wait;
    const stored = store(chunk);
    if (stored) await stored;
  };
  if (source instanceof Uint8Array) {
    await take(source);
    return bytes;
  }
  const reader = source.getReader();
  try {
    for (;;) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (error) {
        throw new BlobSourceError(error);
      }
      if (next.done) return bytes;
      await take(next.value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  } finally {
    reader.releaseLock();
  }
}
