/**
 * The memory adapter: the whole contract in plain maps. For tests, demos and
 * embedding where nothing must survive the process.
 *
 * @module
 */
import { BlobHash, startMarkingHash } from "./blob_hash.ts";
import { BlobSourceError, pumpBlobSource } from "./blob_source.ts";
import { concatBytes } from "../shared/concat_bytes.ts";
import { StorageError } from "./errors.ts";
import { assertValidKey, assertValidPrefix } from "./keys.ts";
import { pageKeys } from "./page_keys.ts";
import type {
  AppendResult,
  BlobInfo,
  BlobStat,
  BlobStore,
  ByteRange,
  DocumentStore,
  KeyPage,
  ListOptions,
  LogStore,
  PutBlobOptions,
  Storage,
  StoredDocument,
  WriteCondition,
} from "./types.ts";

const encoder = new TextEncoder();

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      if (bytes.length) controller.enqueue(bytes);
      controller.close();
    },
  });
}

function sortedKeys(map: Map<string, unknown>): string[] {
  return [...map.keys()].sort();
}

/**
 * Creates an in-memory storage adapter.
 *
 * @example
 * ```ts
 * const storage = createMemoryStorage();
 * await storage.documents.put("settings", { theme: "dark" });
 * ```
 */
export function createMemoryStorage(): Storage {
  const blobs = new Map<string, Uint8Array>();
  const logs = new Map<string, { chunks: Uint8Array[]; length: number }>();
  const documents = new Map<string, { text: string; version: number }>();
  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new StorageError("closed", "storage is closed");
  };

  const blobStore: BlobStore = {
    async put(key: string, source: ReadableStream<Uint8Array> | Uint8Array, options: PutBlobOptions = {}): Promise<BlobInfo> {
      ensureOpen();
      assertValidKey(key);
      const hash = new BlobHash(options);
      const chunks: Uint8Array[] = [];
      let total: number;
      try {
        total = await pumpBlobSource(key, source, options, hash, (chunk) => void chunks.push(chunk.slice()));
      } catch (error) {
        throw error instanceof BlobSourceError ? error.error : error;
      }
      const content = concatBytes(chunks, total);
      const info = await hash.finish(key, () => Promise.resolve(startMarkingHash(options).update(content).finish()));
      blobs.set(key, content);
      return info;
    },
    async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
      ensureOpen();
      assertValidKey(key);
      const bytes = blobs.get(key);
      if (!bytes) throw new StorageError("not_found", `no blob ${key}`, { key });
      return streamOf(range ? bytes.subarray(range.start, range.end) : bytes);
    },
    async stat(key: string): Promise<BlobStat | null> {
      ensureOpen();
      assertValidKey(key);
      const bytes = blobs.get(key);
      return bytes ? { key, bytes: bytes.length } : null;
    },
    async delete(key: string): Promise<boolean> {
      ensureOpen();
      assertValidKey(key);
      return blobs.delete(key);
    },
    async list(prefix: string, options?: ListOptions): Promise<KeyPage> {
      ensureOpen();
      assertValidPrefix(prefix);
      return pageKeys(sortedKeys(blobs), prefix, options);
    },
  };

  const logStore: LogStore = {
    async append(key: string, records: readonly string[]): Promise<AppendResult> {
      ensureOpen();
      assertValidKey(key);
      if (records.some((record) => record.includes("\n"))) {
        throw new StorageError("invalid_record", `a record for ${key} contains a newline`, { key });
      }
      const log = logs.get(key) ?? { chunks: [], length: 0 };
      logs.set(key, log);
      const bytes = encoder.encode(records.map((record) => record + "\n").join(""));
      const start = log.length;
      log.chunks.push(bytes);
      log.length += bytes.length;
      return { start, end: log.length };
    },
    async read(key: string, fromOffset = 0): Promise<ReadableStream<Uint8Array>> {
      ensureOpen();
      assertValidKey(key);
      const log = logs.get(key);
      const bytes = log ? concatBytes(log.chunks, log.length) : new Uint8Array(0);
      return streamOf(bytes.subarray(fromOffset));
    },
    async length(key: string): Promise<number> {
      ensureOpen();
      assertValidKey(key);
      return logs.get(key)?.length ?? 0;
    },
    async delete(key: string): Promise<boolean> {
      ensureOpen();
      assertValidKey(key);
      return logs.delete(key);
    },
  };

  const checkCondition = (key: string, condition: WriteCondition | undefined) => {
    const current = documents.get(key)?.version ?? 0;
    if (condition?.ifVersion !== undefined && condition.ifVersion !== current) {
      throw new StorageError(
        "conflict",
        `document ${key} is at version ${current}, not ${condition.ifVersion}`,
        { key },
      );
    }
    return current;
  };

  const documentStore: DocumentStore = {
    async get<T>(key: string): Promise<StoredDocument<T> | null> {
      ensureOpen();
      assertValidKey(key);
      const stored = documents.get(key);
      return stored ? { value: JSON.parse(stored.text) as T, version: stored.version } : null;
    },
    async put<T>(key: string, value: T, condition?: WriteCondition): Promise<number> {
      ensureOpen();
      assertValidKey(key);
      const version = checkCondition(key, condition) + 1;
      documents.set(key, { text: JSON.stringify(value), version });
      return version;
    },
    async delete(key: string, condition?: WriteCondition): Promise<boolean> {
      ensureOpen();
      assertValidKey(key);
      checkCondition(key, condition);
      return documents.delete(key);
    },
    async list(prefix: string, options?: ListOptions): Promise<KeyPage> {
      ensureOpen();
      assertValidPrefix(prefix);
      return pageKeys(sortedKeys(documents), prefix, options);
    },
  };

  return {
    kind: "memory",
    blobs: blobStore,
    logs: logStore,
    documents: documentStore,
    async close() {
      closed = true;
    },
  };
}
