/**
 * Append-only logs on the file system: one file per key below `<root>/`, one
 * record per line.
 *
 * Durability (group commit): `append` queues its records; one writer at a time
 * takes everything queued, writes it with one `write` and one `fdatasync`, then
 * resolves every append it covered. Appends arriving during a flush ride on the
 * next one, so the fsync cost is shared by all concurrent appenders.
 *
 * Crash repair: when a log is first opened in a process, bytes after its last
 * newline (a record torn by a crash) are cut away before anything else happens.
 *
 * @module
 */
import { mkdir, open, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { concatBytes } from "../../shared/concat_bytes.ts";
import { StorageError } from "../errors.ts";
import { deleteFile, errnoCode, fileStream, ioError, syncDirectory, writeFully } from "./paths.ts";
import { assertValidKey } from "../keys.ts";
import type { AppendResult, LogStore } from "../types.ts";

type FileHandle = Awaited<ReturnType<typeof open>>;

interface PendingAppend {
  bytes: Uint8Array;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

interface OpenLog {
  handle: FileHandle;
  /** Bytes known durable. */
  length: number;
  queue: PendingAppend[];
  flushing: boolean;
  /** Set once the handle is closed; holders must reopen. */
  closed: boolean;
}

const encoder = new TextEncoder();
const NEWLINE = 10;
const TAIL_SCAN_CHUNK = 64 * 1024;
/** Open handles kept at most; idle logs beyond it are closed (reopened on demand). */
const MAX_OPEN_LOGS = 256;

/** Bytes after the last newline of a file of `size` bytes: the torn tail to cut. */
async function tornTailLength(handle: FileHandle, size: number): Promise<number> {
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_SCAN_CHUNK);
    const buffer = new Uint8Array(end - start);
    await handle.read(buffer, 0, buffer.length, start);
    const newline = buffer.lastIndexOf(NEWLINE);
    if (newline >= 0) return size - (start + newline + 1);
    end = start;
  }
  return size;
}

/** Creates the log store rooted at `root`. */
export function createFsLogStore(root: string, ensureOpen: () => void): LogStore & { closeAll(): Promise<void> } {
  const openLogs = new Map<string, OpenLog>();
  const opening = new Map<string, Promise<OpenLog | null>>();

  const pathOf = (key: string) => {
    ensureOpen();
    assertValidKey(key);
    return join(root, key);
  };

  const openLog = async (key: string, create: boolean): Promise<OpenLog | null> => {
    const cached = openLogs.get(key);
    if (cached) {
      openLogs.delete(key);
      openLogs.set(key, cached);
      return cached;
    }
    const inFlight = opening.get(key);
    if (inFlight) {
      const log = await inFlight;
      if (log || !create) return log;
    }
    const promise = doOpen(key, create);
    opening.set(key, promise);
    try {
      return await promise;
    } finally {
      opening.delete(key);
    }
  };

  const doOpen = async (key: string, create: boolean): Promise<OpenLog | null> => {
    const path = pathOf(key);
    let handle: FileHandle;
    try {
      if (!create) {
        try {
          await stat(path);
        } catch (error) {
          if (errnoCode(error) === "ENOENT") return null;
          throw error;
        }
      } else {
        await mkdir(dirname(path), { recursive: true });
      }
      handle = await open(path, "a+");
      const size = (await handle.stat()).size;
      const torn = await tornTailLength(handle, size);
      if (torn > 0) {
        await handle.truncate(size - torn);
        await handle.sync();
      }
      if (create && size === 0) await syncDirectory(dirname(path));
      const log: OpenLog = { handle, length: size - torn, queue: [], flushing: false, closed: false };
      openLogs.set(key, log);
      await evictIdle();
      return log;
    } catch (error) {
      throw ioError(`cannot open log ${key}`, error, key);
    }
  };

  const evictIdle = async () => {
    for (const [key, log] of openLogs) {
      if (openLogs.size <= MAX_OPEN_LOGS) return;
      if (log.flushing || log.queue.length) continue;
      openLogs.delete(key);
      log.closed = true;
      await log.handle.close();
    }
  };

  const flush = async (key: string, log: OpenLog) => {
    log.flushing = true;
    while (log.queue.length) {
      const group = log.queue.splice(0, log.queue.length);
      let total = 0;
      for (const item of group) total += item.bytes.length;
      const buffer = group.length === 1 ? group[0].bytes : concatBytes(group.map((item) => item.bytes), total);
      try {
        await writeFully(log.handle, buffer);
        await log.handle.datasync();
      } catch (error) {
        // The file may now hold part of this group: forget the handle so the next
        // open cuts any torn tail, and fail every append of the group.
        openLogs.delete(key);
        log.closed = true;
        await log.handle.close().catch(() => {});
        const failure = ioError(`cannot append to log ${key}`, error, key);
        for (const item of [...group, ...log.queue.splice(0)]) item.reject(failure);
        log.flushing = false;
        return;
      }
      let start = log.length;
      for (const item of group) {
        const end = start + item.bytes.length;
        item.resolve({ start, end });
        start = end;
      }
      log.length = start;
    }
    log.flushing = false;
  };

  return {
    async append(key: string, records: readonly string[]): Promise<AppendResult> {
      pathOf(key);
      for (const record of records) {
        if (record.includes("\n")) {
          throw new StorageError("invalid_record", `a record for ${key} contains a newline`, { key });
        }
      }
      const text = records.join("\n") + "\n";
      let log = await openLog(key, true) as OpenLog;
      while (log.closed) log = await openLog(key, true) as OpenLog;
      return new Promise<AppendResult>((resolve, reject) => {
        log.queue.push({ bytes: encoder.encode(text), resolve, reject });
        if (!log.flushing) void flush(key, log);
      });
    },

    async read(key: string, fromOffset = 0): Promise<ReadableStream<Uint8Array>> {
      const path = pathOf(key);
      const log = await openLog(key, false);
      const end = log?.length ?? 0;
      return fileStream(path, Math.min(fromOffset, end), end);
    },

    async length(key: string): Promise<number> {
      pathOf(key);
      return (await openLog(key, false))?.length ?? 0;
    },

    async delete(key: string): Promise<boolean> {
      const path = pathOf(key);
      const log = openLogs.get(key);
      if (log) {
        openLogs.delete(key);
        log.closed = true;
        await log.handle.close();
      }
      return await deleteFile(path, `log ${key}`, key);
    },

    async closeAll(): Promise<void> {
      const logs = [...openLogs.values()];
      openLogs.clear();
      for (const log of logs) {
        log.closed = true;
        while (log.flushing) await new Promise((resolve) => setTimeout(resolve, 1));
        await log.handle.close().catch(() => {});
      }
    },
  };
}
