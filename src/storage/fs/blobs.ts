/**
 * Blobs on the file system: one file per key below `<root>/`.
 *
 * Durability: `put` writes a temp file in the target directory, fsyncs it,
 * renames it over the key and fsyncs the directory, so a blob is either wholly
 * there or not there at all; an oversized or failed upload leaves nothing.
 *
 * @module
 */
import { open, rename, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { VECTORED_WRITES, WRITES_IN_FLIGHT_PER_FILE } from "../../runtime/file_writes.ts";
import { BlobHash, startMarkingHash } from "../blob_hash.ts";
import { BlobSourceError, pumpBlobSource } from "../blob_source.ts";
import { concatBytes } from "../../shared/concat_bytes.ts";
import { StorageError } from "../errors.ts";
import {
  deleteFile,
  errnoCode,
  fileStream,
  ioError,
  listKeysUnder,
  makeDirectoryBelow,
  syncDirectory,
  tempPathIn,
  writevFully,
} from "./paths.ts";
import { assertValidKey, assertValidPrefix } from "../keys.ts";
import { pageKeys } from "../page_keys.ts";
import type { MarkedDigest } from "../../integrity/digest_marks.ts";
import type { BlobInfo, BlobStat, BlobStore, ByteRange, KeyPage, ListOptions, PutBlobOptions } from "../types.ts";

/** Size of the writes a `put` gathers chunks into. */
const WRITE_SIZE = 1024 * 1024;
/** Room of a buffer that joins chunks: a write's megabyte and the chunk that passed it. */
const JOIN_CAPACITY = WRITE_SIZE + 256 * 1024;
/** Most chunks in one vectored write; more (tiny) chunks are joined into one first. */
const MAX_PARTS_PER_WRITE = 64;
/**
 * Bytes written between background flushes during a `put`. Without them the
 * kernel holds a large upload's pages until the final fsync, which then waits
 * for all of them; with them, the disk writes while the upload arrives.
 */
const FLUSH_EVERY = 16 * 1024 * 1024;

/** Creates the blob store rooted at `root` (a directory it may create). */
export function createFsBlobStore(root: string, ensureOpen: () => void): BlobStore {
  const pathOf = (key: string) => {
    ensureOpen();
    assertValidKey(key);
    return join(root, key);
  };

  return {
    async put(key: string, source: ReadableStream<Uint8Array> | Uint8Array, options: PutBlobOptions = {}): Promise<BlobInfo> {
      const path = pathOf(key);
      const dir = dirname(path);
      const temp = tempPathIn(root);
      const hash = new BlobHash(options);
      let handle;
      try {
        await makeDirectoryBelow(root, dir);
        handle = await open(temp, "w");
      } catch (error) {
        throw ioError(`cannot write blob ${key}`, error, key);
      }
      // Write-behind: chunks are gathered into writes of about WRITE_SIZE (one vectored
      // write each, no copy), and up to WRITES_IN_FLIGHT_PER_FILE of them run while the next
      // chunks are read and hashed, so the source (often a network upload) is not
      // paused by each disk write. Each write has its own position, so their order
      // does not matter; the fsync after the last one is what makes the blob durable.
      let gathered: Uint8Array[] = [];
      let gatheredBytes = 0;
      let position = 0;
      const writes = new Set<Promise<void>>();
      let flushing: Promise<void> | null = null;
      let unflushed = 0;
      // Buffers that joined chunks for a write that has finished, reused by the next joins:
      // a fresh megabyte per write costs its page faults again (a third of the join on Deno).
      const spareJoins: Uint8Array[] = [];
      const joinGathered = (): Uint8Array =>
        concatBytes(gathered, gatheredBytes, spareJoins.pop() ?? new Uint8Array(Math.max(gatheredBytes, JOIN_CAPACITY)));
      const startWrite = async () => {
        // Many tiny chunks are joined first: a vectored write takes a bounded number of parts.
        const join = gathered.length > 1 && (!VECTORED_WRITES || gathered.length > MAX_PARTS_PER_WRITE);
        const joined = join ? joinGathered() : null;
        const parts = joined ? [joined] : gathered;
        const length = gatheredBytes;
        gathered = [];
        gatheredBytes = 0;
        while (writes.size >= WRITES_IN_FLIGHT_PER_FILE) await Promise.race(writes);
        if (unflushed >= FLUSH_EVERY && flushing === null) {
          unflushed = 0;
          // Starts the disk on what is written so far, so the final fsync has little left to wait for.
          flushing = handle.datasync().finally(() => (flushing = null));
          flushing.catch(() => {});
        }
        unflushed += length;
        const write = writevFully(handle, parts, position);
        position += length;
        writes.add(write);
        // A failed write stays in the set, so the next wait on it (or the last one) throws.
        write.then(() => {
          writes.delete(write);
          if (joined) spareJoins.push(new Uint8Array(joined.buffer));
        }, () => {});
      };
      try {
        await pumpBlobSource(key, source, options, hash, (chunk) => {
          gathered.push(chunk);
          gatheredBytes += chunk.length;
          if (gatheredBytes >= WRITE_SIZE) return startWrite();
        });
        if (gatheredBytes > 0) await startWrite();
        await Promise.all(writes);
        if (flushing) await flushing;
        await handle.sync();
        await handle.close();
        const info = await hash.finish(key, () => hashFile(temp, position, options));
        await rename(temp, path);
        await syncDirectory(dir);
        return info;
      } catch (error) {
        await Promise.allSettled(writes);
        await (flushing as Promise<void> | null)?.catch(() => {});
        await handle.close().catch(() => {});
        await unlink(temp).catch(() => {});
        if (error instanceof BlobSourceError) throw error.error;
        if (error instanceof StorageError) throw error;
        throw ioError(`cannot write blob ${key}`, error, key);
      }
    },

    async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
      const path = pathOf(key);
      const size = await statSize(path, key);
      if (size === null) throw new StorageError("not_found", `no blob ${key}`, { key });
      const start = Math.min(range?.start ?? 0, size);
      const end = Math.min(range?.end ?? size, size);
      return fileStream(path, start, Math.max(start, end));
    },

    async stat(key: string): Promise<BlobStat | null> {
      const size = await statSize(pathOf(key), key);
      return size === null ? null : { key, bytes: size };
    },

    delete: (key: string): Promise<boolean> => deleteFile(pathOf(key), `blob ${key}`, key),

    async list(prefix: string, options?: ListOptions): Promise<KeyPage> {
      ensureOpen();
      assertValidPrefix(prefix);
      return pageKeys(await listKeysUnder(root, prefix), prefix, options);
    },
  };
}

/** The digest of a file's first `bytes` bytes, read back (when a put's hasher could not give it). */
async function hashFile(path: string, bytes: number, options: PutBlobOptions): Promise<MarkedDigest> {
  const hash = startMarkingHash(options);
  for await (const chunk of fileStream(path, 0, bytes)) hash.update(chunk);
  return hash.finish();
}

async function statSize(path: string, key: string): Promise<number | null> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : null;
  } catch (error) {
    if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return null;
    throw ioError(`cannot stat ${key}`, error, key);
  }
}
