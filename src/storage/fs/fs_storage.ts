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
 * Each area keeps its temp files in its own `.tmp/` folder, emptied when the
 * directory is opened: start-up does not grow with the number of keys.
 * `layout.json` says the directory uses that layout; a directory without it
 * (written by an earlier version) is searched once for scattered temp files.
 *
 * @module
 */
import { mkdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { StorageError } from "../errors.ts";
import { createFsBlobStore } from "./blobs.ts";
import { createFsDocumentStore } from "./documents.ts";
import { acquireDirectoryLock } from "./lock.ts";
import { createFsLogStore } from "./logs.ts";
import { ioError, prepareArea, removeScatteredTemps, replaceFileAtomically } from "./paths.ts";
import type { Storage } from "../types.ts";
import type { Logger } from "../../shared/logger.ts";

const AREAS = ["blobs", "logs", "docs"];
/** Marks a data directory whose areas keep their temp files in their `.tmp/` folders. */
const LAYOUT_FILE = "layout.json";
const LAYOUT = { tempFolders: true };
const encoder = new TextEncoder();

async function exists(path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false);
}

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
    for (const area of AREAS) await prepareArea(join(dir, area));
    if (!(await exists(join(dir, LAYOUT_FILE)))) {
      for (const area of AREAS) await removeScatteredTemps(join(dir, area));
      await replaceFileAtomically(join(dir, LAYOUT_FILE), join(dir, "docs"), encoder.encode(JSON.stringify(LAYOUT)));
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
