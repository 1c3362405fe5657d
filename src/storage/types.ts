/**
 * The storage adapter contract. Everything above `src/storage/` talks only to
 * these interfaces; an adapter decides where bytes live.
 *
 * Three kinds of data, each with its own durability promise:
 * - **blobs**: immutable files; `put` is all-or-nothing (nothing is visible under
 *   the key until every byte is durable);
 * - **logs**: append-only records; `append` resolves once its records are durable,
 *   and concurrent appends share one write and one flush (group commit);
 * - **documents**: small JSON values replaced atomically, each with a version
 *   number for compare-and-swap.
 *
 * The contract is also meant for a shared database: versions are plain integers
 * (a `WHERE version = $1` update), log appends are ordered per key, and listing
 * is by key order with an `after` cursor.
 *
 * @module
 */
import type { Clock } from "../shared/clock.ts";
import type { DigestMarks, MarkedDigest } from "../integrity/digest_marks.ts";

/** What `BlobStore.put` returns once the blob is durable. */
export interface BlobInfo {
  /** The blob's key. */
  key: string;
  /** Byte count. */
  bytes: number;
  /** Lower-case hex SHA-256 of the content. */
  sha256: string;
  /** The content's digest marks, when `PutBlobOptions.markEvery` asked for them. */
  marks?: DigestMarks;
}

/** What `BlobStore.stat` returns. */
export interface BlobStat {
  /** The blob's key. */
  key: string;
  /** Byte count. */
  bytes: number;
}

/** A byte range: `start` inclusive, `end` exclusive (default: the end). */
export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** End, exclusive (default: the end of the blob). */
  end?: number;
}

/** Options for listing keys in key order. */
export interface ListOptions {
  /** Only keys after this one (before it when `reverse`). */
  after?: string;
  /** Page size; default 1000. */
  limit?: number;
  /** Descending key order. */
  reverse?: boolean;
}

/** One page of keys; `more` says whether another page follows. */
export interface KeyPage {
  /** Keys in the requested order. */
  keys: string[];
  /** Whether more keys follow. */
  more: boolean;
}

/** Options for `BlobStore.put`. */
export interface PutBlobOptions {
  /** Fail with `too_large` (leaving nothing behind) past this many bytes. */
  maxBytes?: number;
  /**
   * Also return digest marks every this many bytes (the SHA-256 of each such
   * prefix, see `src/integrity/digest_marks.ts`), so a reader can verify the
   * blob stretch by stretch as it streams it.
   */
  markEvery?: number;
  /**
   * Computes the digest instead of the put: the put hands it every byte it
   * writes, in order, and returns its digest. Callers use it to hash on another
   * thread, or to do their own work on each chunk as it is hashed (the upload
   * scan). Its marks must be every `markEvery` bytes.
   */
  hasher?: BlobHasher;
}

/**
 * A put's digest computed outside the put (see `PutBlobOptions.hasher`).
 *
 * @example
 * ```ts
 * const hasher: BlobHasher = { update: (chunk) => void local.update(chunk), finish: async () => local.finish() };
 * ```
 */
export interface BlobHasher {
  /** Takes the put's next bytes, in order; a promise asks the put to wait for it before giving more. */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** The digest of every byte given; undefined when it could not be computed, and the put then hashes what it wrote. */
  finish(): Promise<MarkedDigest | undefined>;
}

/** Immutable byte objects: uploads and finished result files. */
export interface BlobStore {
  /** Stores a blob atomically, hashing and counting on the way. Replaces an existing one. */
  put(
    key: string,
    source: ReadableStream<Uint8Array> | Uint8Array,
    options?: PutBlobOptions,
  ): Promise<BlobInfo>;
  /** Streams a blob, or a byte range of it. @throws `not_found` */
  get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>>;
  /** Size of a blob, or null when absent. */
  stat(key: string): Promise<BlobStat | null>;
  /** Deletes a blob; false when it was absent. */
  delete(key: string): Promise<boolean>;
  /** Lists keys starting with `prefix`, in key order. */
  list(prefix: string, options?: ListOptions): Promise<KeyPage>;
}

/** Where an append landed: byte offsets of the group in the log. */
export interface AppendResult {
  /** Offset of the group's first byte. */
  start: number;
  /** Offset just past the group: the log's durable length covers it. */
  end: number;
}

/** Append-only logs of newline-terminated records. */
export interface LogStore {
  /**
   * Appends records (each a line without `\n`; the store adds it). Resolves once
   * they are durable. Records of one call stay together and in order.
   * @throws `invalid_record` when a record contains a newline.
   */
  append(key: string, records: readonly string[]): Promise<AppendResult>;
  /** Streams the log from a byte offset (default 0); an absent log is empty. */
  read(key: string, fromOffset?: number): Promise<ReadableStream<Uint8Array>>;
  /** The durable length in bytes (0 when absent). */
  length(key: string): Promise<number>;
  /** Deletes a log; false when it was absent. */
  delete(key: string): Promise<boolean>;
}

/** A document with its version (1 for the first write, +1 on each replace). */
export interface StoredDocument<T> {
  /** The document. */
  value: T;
  /** Its version, for compare-and-swap. */
  version: number;
}

/** Options for conditional document writes. */
export interface WriteCondition {
  /** Only if the current version is this one; 0 means "only if absent". */
  ifVersion?: number;
}

/** Small JSON documents, replaced atomically, with compare-and-swap. */
export interface DocumentStore {
  /** Reads a document, or null. @throws `corrupt` when it fails its integrity check. */
  get<T>(key: string): Promise<StoredDocument<T> | null>;
  /** Replaces a document atomically and returns its new version. @throws `conflict` */
  put<T>(key: string, value: T, condition?: WriteCondition): Promise<number>;
  /** Deletes a document; false when it was absent. @throws `conflict` */
  delete(key: string, condition?: WriteCondition): Promise<boolean>;
  /** Lists keys starting with `prefix`, in key order. */
  list(prefix: string, options?: ListOptions): Promise<KeyPage>;
}

/** A storage adapter: the three stores and a way to release them. */
export interface Storage {
  /** Short name of the adapter, e.g. `fs` or `memory`. */
  readonly kind: string;
  /** Immutable files. */
  readonly blobs: BlobStore;
  /** Append-only, group-committed records. */
  readonly logs: LogStore;
  /** Small JSON values with atomic replace and compare-and-swap. */
  readonly documents: DocumentStore;
  /**
   * The time every process on this storage agrees on, when it has one (a
   * database's): what the engine and the webhook deliverer stamp and compare
   * times by, unless given a clock. Without it, the local wall clock.
   */
  readonly clock?: Clock;
  /**
   * Removes what writers that died left behind, never a write in progress,
   * and returns how many were removed. The engine calls it on a schedule.
   * Optional: an adapter whose leftovers only its own earlier runs can leave
   * (the file system's, held by one process) removes them when it opens.
   */
  removeLeftovers?(): Promise<number>;
  /** Flushes and releases resources (files, locks). Further calls fail with `closed`. */
  close(): Promise<void>;
}
