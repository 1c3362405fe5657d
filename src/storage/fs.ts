/**
 * The file-system storage adapter, batchspool's embedded default.
 *
 * Layout of a data directory:
 * ```
 * <dir>/batchspool.lock   one live process at a time (a heartbeat, see fs_lock.ts)
 * <dir>/blobs/<key>       immutable files (atomic put)
 * <dir>/logs/<key>        append-only records (group-committed)
 * <dir>/docs/<key>.json   SHA-256-enveloped documents (atomic replace)
 * ```
 * Temp files (`.tmp-…`) left by a crash are removed when the directory is opened.
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { StorageError } from "./errors.ts";
import { createFsBlobStore } from "./fs_blobs.ts";
import { createFsDocumentStore } from "./fs_documents.ts";
import { acquireDirectoryLock } from "./fs_lock.ts";
import { createFsLogStore } from "./fs_logs.ts";
import { ioError, removeLeftoverTemps } from "./fs_paths.ts";
import type { Storage } from "./types.ts";
import type { Logger } from "../shared/logger.ts";

/** Options for {@link createFsStorage}. */
export interface FsStorageOptions {
  /** The data directory; created when missing. */
  dir: string;
  /**
   * The data directory's lock: refreshed every `heartbeatMs` (default 2 s),
   * stale once not refreshed for `staleAfterMs` (default 10 s). See `fs_lock.ts`.
   */
  lock?: { heartbeatMs?: number; staleAfterMs?: number };
  /** Called once if another process takes the data directory over (this one was stalled past the lock's stale interval). */
  onLockLost?(error: StorageError): void;
  /** Where waiting for the lock and losing it are reported (default: nowhere). */
  logger?: Logger;
}

/**
 * Opens (creating if needed) a data directory and takes its lock.
 *
 * @throws {StorageError} `locked` when another live process has it open (its
 *   lock's heartbeat advanced while this one watched it).
 * @example
 * ```ts
 * const storage = await createFsStorage({ dir: "./batchspool-data" });
 * await storage.documents.put("hello", { world: true });
 * await storage.close();
 * ```
 */
export async function createFsStorage(options: FsStorageOptions): Promise<Storage> {
  const dir = resolve(options.dir);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw ioError(`cannot create data directory ${dir}`, error);
  }
  const lock = await acquireDirectoryLock(join(dir, "batchspool.lock"), {
    ...options.lock,
    logger: options.logger,
    onLost: options.onLockLost,
  });
  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new StorageError("closed", `storage at ${dir} is closed`);
    if (lock.lost) throw lock.lost;
  };
  try {
    for (const area of ["blobs", "logs", "docs"]) {
      await mkdir(join(dir, area), { recursive: true });
      await removeLeftoverTemps(join(dir, area));
    }
  } catch (error) {
    await lock.release();
    throw ioError(`cannot prepare data directory ${dir}`, error);
  }
  const logs = createFsLogStore(join(dir, "logs"), ensureOpen);
  return {
    kind: "fs",
    blobs: createFsBlobStore(join(dir, "blobs"), ensureOpen),
    logs,
    documents: createFsDocumentStore(join(dir, "docs"), ensureOpen),
    async close() {
      if (closed) return;
      closed = true;
      await logs.closeAll();
      await lock.release();
    },
  };
}
