/**
 * The file-system storage adapter, batchspool's embedded default.
 *
 * Layout of a data directory:
 * ```
 * <dir>/batchspool.lock          one live process at a time (a heartbeat, see lock.ts)
 * <dir>/data-<epoch>/blobs/<key>  immutable files (atomic put)
 * <dir>/data-<epoch>/logs/<key>~<epoch>  append-only records (group-committed, see logs.ts)
 * <dir>/data-<epoch>/docs/<key>.json     SHA-256-enveloped documents (atomic replace)
 * ```
 * Each area keeps its temp files in its own `.tmp/` folder, emptied when the
 * directory is opened: start-up does not grow with the number of keys.
 * `layout.json` says the directory uses that layout; a directory without it
 * (written by an earlier version) is searched once for scattered temp files.
 *
 * Fencing: everything lives in one data folder, `data-<epoch>`. A process
 * that takes the directory over from a holder that may only be frozen (its
 * lock went stale, but it cannot be proven gone) first renames that folder to
 * the next epoch. Every write here ends in a call that resolves a path inside
 * the folder (a rename into place, an unlink, the creation of a folder or of a
 * log segment), and none creates the folder itself; so once it has moved, no
 * write of the frozen holder lands, whenever it wakes. The one write through a
 * handle kept open, a log append, goes to the holder's own log segment, which
 * the new holder sealed (`logs.ts`). A rename is atomic on one file system,
 * local or shared (NFS included), so this holds on a shared volume too.
 *
 * @module
 */
import { mkdir, readdir, rename, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Clock } from "../../shared/clock.ts";
import { StorageError } from "../errors.ts";
import { createFsBlobStore } from "./blobs.ts";
import { createFsDocumentStore } from "./documents.ts";
import { acquireDirectoryLock, type DirectoryLock } from "./lock.ts";
import { createFsLogStore } from "./logs.ts";
import {
  errnoCode,
  ioError,
  makeDirectoryBelow,
  prepareArea,
  removeScatteredTemps,
  replaceFileAtomically,
  syncDirectory,
} from "./paths.ts";
import type { Storage } from "../types.ts";
import type { Logger } from "../../shared/logger.ts";

const AREAS = ["blobs", "logs", "docs"];
/** Marks a data folder whose areas keep their temp files in their `.tmp/` folders. */
const LAYOUT_FILE = "layout.json";
const LAYOUT = { tempFolders: true };
/** The data folder's name: its epoch grows by one at each takeover from a holder that may be frozen. */
const DATA_FOLDER = /^data-(\d+)$/;
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
   * stale once unchanged for `staleAfterMs` (default 10 s) while a starter
   * watches it, on `clock` (default: the system's). See `lock.ts`.
   */
  lock?: { heartbeatMs?: number; staleAfterMs?: number; clock?: Clock };
  /** Called once if another process takes the data directory over (this one was stalled past the lock's stale interval). */
  onLockLost?(error: StorageError): void;
  /** Where waiting for the lock and losing it are reported (default: nowhere). */
  logger?: Logger;
}

/** The epochs of the data folders in `dir` (one, but for a layout of an earlier version: none). */
async function dataFolderEpochs(dir: string): Promise<number[]> {
  const epochs: number[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const match = entry.isDirectory() ? DATA_FOLDER.exec(entry.name) : null;
    if (match) epochs.push(Number(match[1]));
  }
  return epochs;
}

/**
 * The data folder of `dir`, settled: an earlier version's areas (at the top
 * of `dir`) moved into it, created (epoch 1) when there is none, and with
 * `advance`, renamed to the next epoch (the fence of a takeover). Each step is
 * one rename, so a crash between them leaves a state the next opener settles.
 */
async function settleDataFolder(dir: string, advance: boolean): Promise<number> {
  const epochs = await dataFolderEpochs(dir);
  if (epochs.length > 1) {
    throw new StorageError("corrupt", `data directory ${dir} holds several data folders (${epochs.map((e) => `data-${e}`).join(", ")})`);
  }
  let epoch = epochs[0] ?? 0;
  const legacy: string[] = [];
  for (const name of [...AREAS, LAYOUT_FILE]) if (await exists(join(dir, name))) legacy.push(name);
  if (epoch === 0 && (legacy.length > 0 || !advance)) {
    epoch = 1;
    await mkdir(join(dir, "data-1"));
    await syncDirectory(dir);
  }
  for (const name of legacy) await rename(join(dir, name), join(dir, `data-${epoch}`, name));
  if (legacy.length) await syncDirectory(join(dir, `data-${epoch}`));
  if (advance && epoch > 0) {
    await rename(join(dir, `data-${epoch}`), join(dir, `data-${epoch + 1}`));
    await syncDirectory(dir);
    epoch++;
  }
  return epoch;
}

/**
 * Wraps each method of `store` so that what a takeover causes (the data
 * folder moved away) is reported as the `locked` error it is: an `io` error,
 * or a delete that found nothing to delete.
 */
function reportingTakeover<T extends object>(store: T, folder: string, lock: DirectoryLock): T {
  const lost = async () =>
    (await lock.check()) ??
      new StorageError("locked", `this process lost the data directory: its data folder ${folder} was moved by a takeover`);
  const translate = async (error: unknown): Promise<unknown> => {
    if (!(error instanceof StorageError) || (error.code !== "io" && error.code !== "locked")) return error;
    return error.code === "locked" || !(await exists(folder)) ? await lost() : error;
  };
  const wrapped = { ...store } as Record<string, unknown>;
  for (const [name, method] of Object.entries(store)) {
    if (typeof method !== "function") continue;
    wrapped[name] = async (...args: unknown[]) => {
      let result;
      try {
        result = await method.apply(store, args);
      } catch (error) {
        throw await translate(error);
      }
      if (name === "delete" && result === false && !(await exists(folder))) throw await lost();
      return result;
    };
  }
  return wrapped as T;
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
    fence: async () => {
      try {
        const epoch = await settleDataFolder(dir, true);
        options.logger?.warn(`took the data directory ${dir} over from a holder that stopped refreshing its lock: data folder now data-${epoch}`);
      } catch (error) {
        if (error instanceof StorageError) throw error;
        throw ioError(`cannot fence off the data directory's former holder in ${dir}`, error);
      }
    },
  });
  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new StorageError("closed", `storage at ${dir} is closed`);
    if (lock.lost) throw lock.lost;
  };
  let folder: string;
  let epoch: number;
  try {
    epoch = await settleDataFolder(dir, false);
    folder = join(dir, `data-${epoch}`);
    for (const area of AREAS) {
      await makeDirectoryBelow(dir, join(folder, area));
      await prepareArea(join(folder, area));
    }
    if (!(await exists(join(folder, LAYOUT_FILE)))) {
      for (const area of AREAS) await removeScatteredTemps(join(folder, area));
      await replaceFileAtomically(join(folder, LAYOUT_FILE), join(folder, "docs"), encoder.encode(JSON.stringify(LAYOUT)));
    }
  } catch (error) {
    await lock.release();
    if (error instanceof StorageError) throw error;
    throw ioError(`cannot prepare data directory ${dir}`, error);
  }
  const logs = createFsLogStore(join(folder, "logs"), epoch, ensureOpen);
  return {
    kind: "fs",
    blobs: reportingTakeover(createFsBlobStore(join(folder, "blobs"), ensureOpen), folder, lock),
    logs: reportingTakeover(logs, folder, lock),
    documents: reportingTakeover(createFsDocumentStore(join(folder, "docs"), ensureOpen), folder, lock),
    async close() {
      if (closed) return;
      closed = true;
      await logs.closeAll();
      await lock.release();
    },
  };
}

/** The data folder of the data directory `dir` (for tools and tests that look at files directly). */
export async function dataFolderOf(dir: string): Promise<string> {
  const epochs = await dataFolderEpochs(resolve(dir)).catch((error) => {
    if (errnoCode(error) === "ENOENT") return [];
    throw error;
  });
  if (epochs.length !== 1) throw new StorageError("not_found", `no single data folder in ${dir}`);
  return join(resolve(dir), `data-${epochs[0]}`);
}
