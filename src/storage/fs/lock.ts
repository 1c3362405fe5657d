/**
 * The data directory lock: one live process at a time may open a data
 * directory.
 *
 * Liveness is a heartbeat, not a pid: the holder sets the lock file's
 * modification time every `heartbeatMs`, and a lock not refreshed for
 * `staleAfterMs` is stale, whoever wrote it. Pids and host names prove nothing
 * in containers (a restarted entrypoint is pid 1 again, on the same host name;
 * a pod rescheduled elsewhere has another host name). A starter that finds a
 * fresh lock watches it: refreshed or replaced meanwhile, its holder is alive
 * and opening fails with `locked`; unchanged for `staleAfterMs`, it is taken
 * over. One shortcut: a lock written in this boot of this host and in this pid
 * namespace by a process that is gone is stale at once, so a restart outside a
 * container does not wait.
 *
 * Taking over has one winner among racing starters: a starter first creates
 * `<lock>.takeover-<the stale lock's identity>-<n>` exclusively, then checks
 * that the lock is still the stale one before it replaces it atomically.
 * The holder checks its token at each heartbeat: if another process took over
 * (this one was paused past `staleAfterMs`), the lock is lost, every further
 * storage call fails with `locked`, and `onLost` is called.
 *
 * @module
 */
import { open, readdir, readFile, rename, stat, unlink, utimes } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type ProcessIdentity, provablyGone, thisProcess } from "../../runtime/process_identity.ts";
import { unrefTimer } from "../../runtime/unref_timer.ts";
import { type Logger, silentLogger } from "../../shared/logger.ts";
import { StorageError } from "../errors.ts";
import { errnoCode, ioError, syncDirectory } from "./paths.ts";

/** How often the holder refreshes its lock, by default. */
export const DEFAULT_LOCK_HEARTBEAT_MS = 2_000;
/** How long a lock may go unrefreshed before it is stale, by default. */
export const DEFAULT_LOCK_STALE_AFTER_MS = 10_000;

/** What a lock file says about its holder. */
interface LockHolder extends ProcessIdentity {
  /** Random per acquisition: what the holder checks at each heartbeat. */
  token: string;
  acquiredAt: string;
}

/** A lock file as a starter saw it. */
interface SeenLock {
  /** The holder's token, or the file's inode when it has none (a torn or older lock). */
  identity: string;
  mtimeMs: number;
  holder: Partial<LockHolder> | null;
}

/** Options for {@link acquireDirectoryLock}. */
export interface DirectoryLockOptions {
  /** How often the holder refreshes the lock (default 2 s). */
  heartbeatMs?: number;
  /** A lock not refreshed for this long is stale (default 10 s). */
  staleAfterMs?: number;
  /** Where waiting for a lock and a lost lock are reported. */
  logger?: Logger;
  /** Called once if another process takes the lock over. */
  onLost?(error: StorageError): void;
}

/** A held lock. */
export interface DirectoryLock {
  readonly path: string;
  /** Set once another process has taken the lock over: nothing may be written any more. */
  readonly lost: StorageError | null;
  /** Stops the heartbeat and deletes the lock file (unless it was lost). */
  release(): Promise<void>;
}

/** Lock paths held (or being acquired) by this process. */
const heldHere = new Set<string>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function look(path: string): Promise<SeenLock | null> {
  try {
    const info = await stat(path);
    const text = await readFile(path, "utf8");
    let holder: Partial<LockHolder> | null = null;
    try {
      const parsed = JSON.parse(text);
      if (typeof parsed === "object" && parsed !== null) holder = parsed;
    } catch {
      // Torn by a crash while it was written: it has no holder to name.
    }
    const identity = typeof holder?.token === "string" && /^[\w-]{1,64}$/.test(holder.token)
      ? holder.token
      : `inode-${info.ino}`;
    return { identity, mtimeMs: info.mtimeMs, holder };
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return null;
    throw ioError(`cannot read lock ${path}`, error);
  }
}

/** Creates `path` with `content` unless it exists; true when created. */
async function createExclusive(path: string, content: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, "wx");
  } catch (error) {
    if (errnoCode(error) === "EEXIST") return false;
    throw ioError(`cannot create lock ${path}`, error);
  }
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await syncDirectory(dirname(path));
  return true;
}

function inUse(path: string, seen: SeenLock): StorageError {
  const { pid, host } = seen.holder ?? {};
  const who = typeof pid === "number" ? `process ${pid} on ${host ?? "an unknown host"}` : "another process";
  const age = Math.max(0, Math.round((Date.now() - seen.mtimeMs) / 1000));
  return new StorageError(
    "locked",
    `data directory is in use by ${who}: its lock ${path} was refreshed ${age} s ago and is kept fresh; ` +
      `stop that process or use another data directory`,
  );
}

/**
 * Takes over the stale lock `seen`, unless another starter does first or the
 * lock changes meanwhile. True when this process now holds it.
 */
async function takeOver(path: string, seen: SeenLock, content: string, staleAfterMs: number): Promise<boolean> {
  const base = `${path}.takeover-${seen.identity}-`;
  let claim: string | null = null;
  for (let attempt = 1; claim === null; attempt++) {
    if (await createExclusive(base + attempt, content)) {
      claim = base + attempt;
      break;
    }
    // Another starter is taking over, unless its claim is stale: it died in the middle.
    const other = await stat(base + attempt).catch(() => null);
    if (other && Date.now() - other.mtimeMs < staleAfterMs) return false;
  }
  try {
    const now = await look(path);
    if (!now || now.identity !== seen.identity || now.mtimeMs !== seen.mtimeMs) return false;
    const temp = `${path}.new-${crypto.randomUUID()}`;
    try {
      await createExclusive(temp, content);
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw ioError(`cannot take over lock ${path}`, error);
    }
    await syncDirectory(dirname(path));
    return true;
  } finally {
    await unlink(claim).catch(() => {});
  }
}

/** Removes claims left by starters that died while taking over (called by the holder). */
async function removeTakeoverClaims(path: string): Promise<void> {
  const prefix = `${basename(path)}.takeover-`;
  const entries = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of entries) {
    if (name.startsWith(prefix)) await unlink(join(dirname(path), name)).catch(() => {});
  }
}

function tokenOf(text: string): string | undefined {
  try {
    return JSON.parse(text)?.token;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock file at `path`: creates it, or takes over a stale one after
 * watching it for up to `staleAfterMs`.
 *
 * @throws {StorageError} `locked` when a live process holds it (its heartbeat
 *   advanced while this one watched), or this process already does.
 * @example
 * ```ts
 * const lock = await acquireDirectoryLock("./data/batchspool.lock", { onLost: () => process.exit(1) });
 * await lock.release();
 * ```
 */
export async function acquireDirectoryLock(path: string, options: DirectoryLockOptions = {}): Promise<DirectoryLock> {
  const heartbeatMs = options.heartbeatMs ?? DEFAULT_LOCK_HEARTBEAT_MS;
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_LOCK_STALE_AFTER_MS;
  const logger = options.logger ?? silentLogger;
  if (!(heartbeatMs > 0 && staleAfterMs > heartbeatMs)) {
    throw new RangeError(`the lock's stale interval (${staleAfterMs} ms) must exceed its heartbeat (${heartbeatMs} ms)`);
  }
  if (heldHere.has(path)) {
    throw new StorageError("locked", `data directory is already open in this process (lock file ${path})`);
  }
  heldHere.add(path);
  try {
    const me = await thisProcess();
    const token = crypto.randomUUID();
    const content = JSON.stringify({ token, ...me, acquiredAt: new Date().toISOString() } satisfies LockHolder);
    await takeLock(path, content, me, { staleAfterMs, heartbeatMs, logger });
    await removeTakeoverClaims(path);
    return holdLock(path, token, heartbeatMs, logger, options.onLost);
  } catch (error) {
    heldHere.delete(path);
    throw error;
  }
}

async function takeLock(
  path: string,
  content: string,
  me: Omit<LockHolder, "token" | "acquiredAt">,
  { staleAfterMs, heartbeatMs, logger }: { staleAfterMs: number; heartbeatMs: number; logger: Logger },
): Promise<void> {
  /** The lock being watched, and when (on this process's monotonic clock) it counts as stale. */
  let watched: { seen: SeenLock; staleAt: number } | null = null;
  for (;;) {
    if (await createExclusive(path, content)) return;
    const seen = await look(path);
    if (!seen) continue; // released meanwhile: create it again
    if (watched && (seen.identity !== watched.seen.identity || seen.mtimeMs !== watched.seen.mtimeMs)) {
      // Refreshed or replaced while watched: its holder is alive.
      throw inUse(path, seen);
    }
    if (!watched) {
      const age = Math.max(0, Date.now() - seen.mtimeMs);
      watched = { seen, staleAt: performance.now() + Math.max(0, staleAfterMs - age) };
      if (!provablyGone(seen.holder, me) && age < staleAfterMs) {
        const { pid, host } = seen.holder ?? {};
        logger.warn(
          `the data directory's lock ${path} names ${typeof pid === "number" ? `process ${pid} on ${host}` : "another process"}, ` +
            `refreshed ${Math.round(age / 1000)} s ago; waiting up to ${Math.ceil((staleAfterMs - age) / 1000)} s ` +
            `for it to be refreshed (then it is in use) or to go stale (then it is taken over)`,
        );
      }
    }
    if (provablyGone(seen.holder, me) || performance.now() >= watched.staleAt) {
      if (await takeOver(path, seen, content, staleAfterMs)) return;
      continue; // another starter won, or the lock changed: the next look decides
    }
    await sleep(Math.min(heartbeatMs / 2, watched.staleAt - performance.now()));
  }
}

function holdLock(
  path: string,
  token: string,
  heartbeatMs: number,
  logger: Logger,
  onLost: ((error: StorageError) => void) | undefined,
): DirectoryLock {
  let lost: StorageError | null = null;
  let released = false;
  let beating: Promise<void> | null = null;
  let failing = false;
  const lose = (reason: string) => {
    lost = new StorageError("locked", `this process lost the data directory's lock ${path}: ${reason}`);
    clearInterval(timer);
    heldHere.delete(path);
    logger.error(lost.message);
    onLost?.(lost);
  };
  const beat = async () => {
    try {
      if (tokenOf(await readFile(path, "utf8")) !== token) {
        return lose("another process took it over (this one was stopped or stalled for longer than the lock's stale interval)");
      }
      const now = new Date();
      await utimes(path, now, now);
      if (failing) logger.info(`the data directory's lock ${path} is refreshed again`);
      failing = false;
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return lose("its lock file was removed");
      if (!failing) logger.warn(`cannot refresh the data directory's lock ${path}: ${(error as Error).message}`);
      failing = true;
    }
  };
  const timer = setInterval(() => {
    if (beating || lost || released) return;
    beating = beat().finally(() => (beating = null));
  }, heartbeatMs);
  unrefTimer(timer);
  return {
    path,
    get lost() {
      return lost;
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await beating;
      if (lost) return;
      heldHere.delete(path);
      try {
        if (tokenOf(await readFile(path, "utf8")) === token) await unlink(path);
      } catch {
        // Already gone.
      }
    },
  };
}
