/**
 * Digest marks: the SHA-256 of a byte stream's prefixes at every `every`
 * bytes, taken while the stream is hashed anyway (a copy of the hash state per
 * mark, no second pass). A reader that has them checks each stretch of a large
 * file just before using it, holding back at most one stretch, instead of
 * hashing the whole file before it may start.
 *
 * @module
 */
import { IntegrityError } from "./envelope.ts";
import { createSha256 } from "./sha256.ts";

/** Prefix digests of a byte stream. */
export interface DigestMarks {
  /** Bytes between two marks. */
  every: number;
  /** `digests[k]` is the hex SHA-256 of the first `(k + 1) * every` bytes. */
  digests: string[];
}

/** A stream's whole digest and its marks: what a reader checks the stream against. */
export interface MarkedDigest {
  /** Hex SHA-256 of all the bytes. */
  sha256: string;
  /** How many bytes there are. */
  bytes: number;
  marks: DigestMarks;
}

/**
 * The default distance between marks. A verifying reader gives out nothing
 * before the first mark and holds at most two stretches: 1 MiB lets a batch
 * send its first request after reading 1 MiB of its input, not 4, for 64
 * bytes of record per MiB of file.
 */
export const DEFAULT_MARK_EVERY: number = 1024 * 1024;

/**
 * SHA-256 of bytes fed in pieces, with a mark every `every` bytes.
 *
 * @example
 * ```ts
 * const hash = new MarkingSha256(4);
 * hash.update(new TextEncoder().encode("0123456789"));
 * hash.finish(); // { sha256: <of "0123456789">, bytes: 10, marks: { every: 4, digests: [<of "0123">, <of "01234567">] } }
 * ```
 */
export class MarkingSha256 {
  /** Bytes between two marks. */
  readonly every: number;
  #hash = createSha256();
  #digests: string[] = [];
  #untilMark: number;
  #bytes = 0;

  /** @param every bytes between two marks (a positive integer) */
  constructor(every: number = DEFAULT_MARK_EVERY) {
    if (!Number.isSafeInteger(every) || every <= 0) throw new RangeError("every must be a positive integer");
    this.every = every;
    this.#untilMark = every;
  }

  /** Feeds more bytes; returns the same object for chaining. */
  update(data: Uint8Array): this {
    this.#bytes += data.length;
    let rest = data;
    while (rest.length >= this.#untilMark) {
      this.#hash.update(rest.subarray(0, this.#untilMark));
      this.#digests.push(this.#hash.digestSoFar());
      rest = rest.subarray(this.#untilMark);
      this.#untilMark = this.every;
    }
    if (rest.length > 0) {
      this.#hash.update(rest);
      this.#untilMark -= rest.length;
    }
    return this;
  }

  /** Ends the computation: the whole digest and the marks. */
  finish(): MarkedDigest {
    return { sha256: this.#hash.hexDigest(), bytes: this.#bytes, marks: { every: this.every, digests: this.#digests } };
  }
}

/**
 * Checks bytes against a {@link MarkedDigest} as they come, and gives them
 * back only once they are proven: each stretch up to a mark when the digest
 * there matches, the rest when the whole digest does at the end. It holds back
 * at most `expected.marks.every` bytes plus one chunk.
 *
 * @example
 * ```ts
 * const check = new MarkVerifier(expected);
 * for (const chunk of chunks) {
 *   use(check.push(chunk)); // the proven bytes, possibly none yet
 *   if (check.failure) throw check.failure;
 * }
 * use(check.end()); // throws IntegrityError when the end does not match
 * ```
 */
export class MarkVerifier {
  /** Set at the first stretch that differs; nothing of that stretch or after it is given back. */
  failure: IntegrityError | null = null;
  #expected: MarkedDigest;
  #hash = createSha256();
  #held: Uint8Array[] = [];
  #mark = 0;
  #untilMark: number;
  #seen = 0;

  /** @param expected what the bytes must match */
  constructor(expected: MarkedDigest) {
    this.#expected = expected;
    this.#untilMark = expected.marks.digests.length > 0 ? expected.marks.every : Infinity;
  }

  /** Takes the next chunk; returns the bytes proven by it (views of the chunks, in order). */
  push(chunk: Uint8Array): Uint8Array[] {
    if (this.failure) return [];
    const { every, digests } = this.#expected.marks;
    this.#seen += chunk.length;
    if (this.#seen > this.#expected.bytes) {
      this.failure = new IntegrityError(`the stream is longer than the ${this.#expected.bytes} bytes recorded`);
      return [];
    }
    let proven: Uint8Array[] = [];
    let rest = chunk;
    while (rest.length >= this.#untilMark) {
      const head = rest.subarray(0, this.#untilMark);
      this.#hash.update(head);
      if (this.#hash.digestSoFar() !== digests[this.#mark]) {
        this.failure = new IntegrityError(
          `bytes ${this.#mark * every}–${(this.#mark + 1) * every} differ from the ones whose SHA-256 was recorded`,
        );
        return proven;
      }
      this.#held.push(head);
      proven = proven.concat(this.#held);
      this.#held = [];
      rest = rest.subarray(this.#untilMark);
      this.#mark++;
      this.#untilMark = this.#mark < digests.length ? every : Infinity;
    }
    if (rest.length > 0) {
      this.#hash.update(rest);
      this.#held.push(rest);
      this.#untilMark -= rest.length;
    }
    return proven;
  }

  /**
   * Ends the input; returns the rest of the bytes once the whole digest matches.
   * @throws {IntegrityError} when a stretch failed, the input is short, or the whole digest differs
   */
  end(): Uint8Array[] {
    if (this.failure) throw this.failure;
    const { sha256, bytes } = this.#expected;
    if (this.#seen < bytes) {
      throw new IntegrityError(`the stream ended after ${this.#seen} bytes: it is shorter than the ${bytes} recorded`);
    }
    const actual = this.#hash.hexDigest();
    if (actual !== sha256) throw new IntegrityError(`the stream's SHA-256 is ${actual}, not ${sha256} as recorded`);
    const rest = this.#held;
    this.#held = [];
    return rest;
  }
}

/**
 * The bytes of `source`, each passed on only once it is proven to be one of
 * the bytes `expected` describes (see {@link MarkVerifier}). At the first
 * difference the stream errors with an {@link IntegrityError}, after every
 * byte proven before it has been read.
 *
 * While the consumer works through one proven stretch, the next is read and
 * checked, so a reader does not stall at each mark: at most two stretches
 * (plus a chunk) are held. `onFailure` hears the error the stream ends with.
 *
 * @example
 * ```ts
 * const proven = verifiedStream(await storage.blobs.get(key), { sha256, bytes, marks });
 * ```
 */
export function verifiedStream(
  source: ReadableStream<Uint8Array>,
  expected: MarkedDigest,
  onFailure?: (error: unknown) => void,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const check = new MarkVerifier(expected);
  /** Reads and checks chunks until a stretch is proven or the source ends. */
  const proveStretch = async (): Promise<{ proven: Uint8Array[]; done: boolean }> => {
    for (;;) {
      if (check.failure) throw check.failure;
      const { done, value } = await reader.read();
      if (done) return { proven: check.end(), done };
      const proven = check.push(value);
      if (proven.length > 0) return { proven, done };
    }
  };
  /** The stretch after the one given out last, read and checked while the consumer works through that one. */
  let ahead: Promise<{ proven: Uint8Array[]; done: boolean }> | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      // The queue is empty whenever this runs (high-water mark 0), so an error
      // raised here never discards proven bytes that were not read yet.
      try {
        const { proven, done } = await (ahead ?? proveStretch());
        for (const bytes of proven) controller.enqueue(bytes);
        if (done) return controller.close();
        ahead = proveStretch();
        // A failure ahead is raised by the next pull, once the proven bytes were read.
        ahead.catch(() => {});
      } catch (error) {
        await reader.cancel().catch(() => {});
        onFailure?.(error);
        controller.error(error);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
