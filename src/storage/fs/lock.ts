/**
 * The data directory lock: one live process at a time may open a data
 * directory.
 *
 * Liveness is a heartbeat, not a pid: the holder sets the lock file's
 * modification time every `heartbeatMs`. A starter that finds the lock watches
 * it for `staleAfterMs` on its own monotonic clock: changed or replaced
 * meanwhile, its holder is alive and opening fails with `locked`; unchanged
 * for the whole interval, it is stale and taken over. The starter never
 * compares the file's time with its own clock, so a holder whose clock runs
 * behind is not mistaken for a dead one. Pids and host names prove nothing in
 * containers (a restarted entrypoint is pid 1 again, on the same host name; a
 * pod rescheduled elsewhere has another host name). One shortcut: a lock
 * written in this boot of this host and in this pid namespace by a process
 * that is gone is stale at once, so a restart outside a container does not
 * wait.
 *
 * Taking over has one winner among racing starters: a starter first creates
 * `<lock>.takeover-<the stale lock's identity>-<n>` exclusively, then checks
 * that the lock is still the stale one before it replaces it atomically.
 *
 * A holder that is only stale (not provably gone) may be frozen rather than
 * dead (SIGSTOP, a paused VM or container) and write again when it wakes. So
 * before the lock names the new holder, the winner calls `fence`, which must
 * make every later write of the old holder fail (the fs storage moves its
 * data folder, see `fs_storage.ts`); the old holder also finds the lock taken
 * over at its next heartbeat, after which every storage call fails with
 * `locked` and `onLost` is called.
 *
 * @module
 */
import { open, readdir, readFile, rename, stat, unlink, utimes } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type ProcessIdentity, provablyGone, thisProcess } from "../../runtime/process_identity.ts";
import { type Clock, type ClockTimer, sleep, systemClock } from "../../shared/clock.ts";
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
  /** The file's modification time: only compared with itself, never with a clock. */
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
  /** Where the watch and the heartbeat take their time (default: the system clock). */
  clock?: Clock;
  /**
   * Called by the starter that won a takeover from a holder that may still be
   * alive (stale, not provably gone), before the lock names the starter: it
   * must make every later write of that holder fail. A failure leaves the
   * old lock in place and fails the acquisition.
   */
  fence?(): Promise<void>;
}

/** A held lock. */
export interface DirectoryLock {
  readonly path: string;
  /** Set once another process has taken the lock over: nothing may be written any more. */
  readonly lost: StorageError | null;
  /** Checks the lock now rather than at the next heartbeat; resolves with `lost`. */
  check(): Promise<StorageError | null>;
  /** Stops the heartbeat and deletes the lock file (unless it was lost). */
  release(): Promise<void>;
}

/** Lock paths held (or being acquired) by this process. */
const heldHere = new Set<string>();

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

/** Names a lock's holder for messages. */
function holderName(seen: SeenLock): string {
  const { pid, host } = seen.holder ?? {};
  return typeof pid === "number" ? `process ${pid} on ${host ?? "an unknown host"}` : "another process";
}

function inUse(path: string, seen: SeenLock): StorageError {
  return new StorageError(
    "locked",
    `data directory is in use by ${holderName(seen)}: its lock ${path} was refreshed while this process watched it; ` +
      `stop that process or use another data directory`,
  );
}

/** How a takeover attempt ended. */
type TakeoverOutcome = "won" | "changed" | "claimed";

/**
 * Takes over the stale lock `seen`, unless another starter does first or the
 * lock changes meanwhile. `claims` remembers when (on `clock`) this starter
 * first saw each other starter's claim: one that stays longer than the stale
 * interval belongs to a starter that died in the middle, and is passed over.
 */
async function takeOver(
  path: string,
  seen: SeenLock,
  content: string,
  options: { staleAfterMs: number; clock: Clock; claims: Map<string, number>; fence?: () => Promise<void> },
): Promise<TakeoverOutcome> {
  const base = `${path}.takeover-${seen.identity}-`;
  let claim: string | null = null;
  for (let attempt = 1; claim === null; attempt++) {
    if (await createExclusive(base + attempt, content)) {
      claim = base + attempt;
      break;
    }
    const firstSeen = options.claims.get(base + attempt) ?? options.clock.monotonic();
    options.claims.set(base + attempt, firstSeen);
    if (options.clock.monotonic() - firstSeen < options.staleAfterMs) return "claimed";
  }
  try {
    const now = await look(path);
    if (!now || now.identity !== seen.identity || now.mtimeMs !== seen.mtimeMs) return "changed";
    await options.fence?.();
    const temp = `${path}.new-${crypto.randomUUID()}`;
    try {
      await createExclusive(temp, content);
      await rename(temp, path);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw ioError(`cannot take over lock ${path}`, error);
    }
    await syncDirectory(dirname(path));
    return "won";
  } finally {
    await unlink(claim).catch(() => {});
  }
}

/**
 * Removes what starters that died while taking over left beside the lock
 * (called by the holder): their claims and the new locks they did not rename
 * into place.
 */
async function removeTakeoverLeftovers(path: string): Promise<void> {
  const prefixes = [`${basename(path)}.takeover-`, `${basename(path)}.new-`];
  const entries = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of entries) {
    if (prefixes.some((prefix) => name.startsWith(prefix))) await unlink(join(dirname(path), name)).catch(() => {});
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
  const clock = options.clock ?? systemClock;
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
    await takeLock(path, content, me, { staleAfterMs, heartbeatMs, logger, clock, fence: options.fence });
    await removeTakeoverLeftovers(path);
    return holdLock(path, token, heartbeatMs, logger, clock, options.onLost);
  } catch (error) {
    heldHere.delete(path);
    throw error;
  }
}

async function takeLock(
  path: string,
  content: string,
  me: Omit<LockHolder, "token" | "acquiredAt">,
  options: { staleAfterMs: number; heartbeatMs: number; logger: Logger; clock: Clock; fence?: () => Promise<void> },
): Promise<void> {
  const { staleAfterMs, heartbeatMs, logger, clock } = options;
  /** The lock being watched, and when (on the injected monotonic clock) it counts as stale. */
  let watched: { seen: SeenLock; staleAt: number } | null = null;
  const claims = new Map<string, number>();
  for (;;) {
    if (await createExclusive(path, content)) return;
    const seen = await look(path);
    if (!seen) continue; // released meanwhile: create it again
    if (watched && (seen.identity !== watched.seen.identity || seen.mtimeMs !== watched.seen.mtimeMs)) {
      // Refreshed or replaced while watched: its holder is alive.
      throw inUse(path, seen);
    }
    const gone = provablyGone(seen.holder, me);
    if (!watched) {
      watched = { seen, staleAt: clock.monotonic() + staleAfterMs };
      if (!gone) {
        logger.warn(
          `the data directory's lock ${path} names ${holderName(seen)}; waiting up to ${Math.ceil(staleAfterMs / 1000)} s ` +
            `for it to be refreshed (then it is in use) or to stay unchanged (then it is taken over)`,
        );
      }
    }
    if (gone || clock.monotonic() >= watched.staleAt) {
      // A holder that is gone writes nothing more; one that is only silent may be frozen, and is fenced off.
      const fence = gone ? undefined : options.fence;
      const outcome = await takeOver(path, seen, content, { staleAfterMs, clock, claims, fence });
      if (outcome === "won") return;
      // Another starter is taking over (the next look finds its lock), or the lock changed: the next look decides.
      if (outcome === "claimed") await sleep(clock, Math.min(heartbeatMs / 2, 100));
      continue;
    }
    await sleep(clock, Math.min(heartbeatMs / 2, watched.staleAt - clock.monotonic()));
  }
}

function holdLock(
  path: string,
  token: string,
  heartbeatMs: number,
  logger: Logger,
  clock: Clock,
  onLost: ((error: StorageError) => void) | undefined,
): DirectoryLock {
  let lost: StorageError | null = null;
  let released = false;
  let beating: Promise<void> | null = null;
  let failing = false;
  let timer: ClockTimer | undefined;
  const lose = (reason: string) => {
    if (lost) return;
    lost = new StorageError("locked", `this process lost the data directory's lock ${path}: ${reason}`);
    clock.clearTimeout(timer);
    heldHere.delete(path);
    logger.error(lost.message);
    onLost?.(lost);
  };
  /** Whether the lock still names this holder; loses it when it does not. */
  const stillMine = async (): Promise<boolean> => {
    try {
      if (tokenOf(await readFile(path, "utf8")) === token) return true;
      lose("another process took it over (this one was stopped or stalled for longer than the lock's stale interval)");
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") throw error;
      lose("its lock file was removed");
    }
    return false;
  };
  const beat = async () => {
    try {
      if (!(await stillMine())) return;
      const now = new Date(clock.now());
      await utimes(path, now, now);
      if (failing) logger.info(`the data directory's lock ${path} is refreshed again`);
      failing = false;
    } catch (error) {
      if (!failing) logger.warn(`cannot refresh the data directory's lock ${path}: ${(error as Error).message}`);
      failing = true;
    }
  };
  const schedule = () => {
    timer = clock.setTimeout(() => {
      if (lost || released) return;
      beating = beat().finally(() => {
        beating = null;
        if (!lost && !released) schedule();
      });
    }, heartbeatMs, true);
  };
  schedule();
  return {
    path,
    get lost() {
      return lost;
    },
    async check() {
      if (!lost && !released) await stillMine().catch(() => {});
      return lost;
    },
    async release() {
      if (released) return;
      released = true;
      clock.clearTimeout(timer);
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
