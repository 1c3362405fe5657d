/**
 * The data directory lock: one process at a time may open a data directory.
 *
 * The lock file holds the owner's pid and host. A lock whose process is gone
 * (same host, pid no longer alive) is stale and is taken over; a live one makes
 * opening fail with a `locked` error naming the owner.
 *
 * @module
 */
import { open, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import process from "node:process";
import { StorageError } from "./errors.ts";
import { errnoCode, ioError } from "./fs_paths.ts";

interface LockOwner {
  pid: number;
  host: string;
  acquiredAt: string;
}

/** A held lock; `release` deletes the lock file. */
export interface DirectoryLock {
  readonly path: string;
  release(): Promise<void>;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

/**
 * Takes the lock file at `path`, taking over a stale one.
 *
 * @throws {StorageError} `locked` when a live process holds it.
 */
export async function acquireDirectoryLock(path: string): Promise<DirectoryLock> {
  const owner: LockOwner = { pid: process.pid, host: hostname(), acquiredAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, "wx");
      try {
        await handle.writeFile(JSON.stringify(owner));
        await handle.sync();
      } finally {
        await handle.close();
      }
      return {
        path,
        release: async () => {
          await unlink(path).catch(() => {});
        },
      };
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw ioError(`cannot create lock ${path}`, error);
    }
    let holder: Partial<LockOwner> = {};
    try {
      holder = JSON.parse(await readFile(path, "utf8"));
    } catch {
      // An unreadable lock (torn by a crash while being written) is stale.
    }
    const sameHost = holder.host === undefined || holder.host === owner.host;
    const live = typeof holder.pid === "number" && (!sameHost || isAlive(holder.pid));
    if (live) {
      throw new StorageError(
        "locked",
        `data directory is in use by process ${holder.pid} on ${holder.host} (lock file ${path}); ` +
          `stop that process or use another data directory`,
      );
    }
    await unlink(path).catch(() => {});
  }
  throw new StorageError("locked", `could not take the lock ${path}: another process keeps taking it`);
}
