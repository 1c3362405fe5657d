/**
 * Append-only logs on the file system, one record per line.
 *
 * Durability (group commit): `append` queues its records; one writer at a time
 * takes everything queued, writes it with one `write` and one `fdatasync`, then
 * resolves every append it covered. Appends arriving during a flush ride on the
 * next one, so the fsync cost is shared by all concurrent appenders.
 *
 * Segments (fencing): a log is one file per holder epoch of the data
 * directory, `<key>~<epoch>` (an earlier version's log is the plain `<key>`).
 * A holder appends only to its own epoch's segment, through a handle it keeps
 * open. A holder that was frozen and woke after a takeover still has its
 * handle, which no move of folders invalidates; so the new holder never
 * appends to its segment: on first opening a log whose newest segment is
 * another epoch's, it makes its own segment, whose first line (its header)
 * seals every earlier segment at the length it found. Whatever the woken
 * holder appends later lies past its seal and is never read.
 *
 * Crash repair: when a log is first opened in a process, bytes after the last
 * newline of its own segment (a record torn by a crash) are cut away before
 * anything else happens; a sealed segment's torn tail lies past its seal.
 *
 * @module
 */
import { open, readdir, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { concatBytes } from "../../shared/concat_bytes.ts";
import { StorageError } from "../errors.ts";
import {
  deleteFile,
  errnoCode,
  fileStream,
  ioError,
  makeDirectoryBelow,
  syncDirectory,
  tempPathIn,
  writeFully,
} from "./paths.ts";
import { assertValidKey } from "../keys.ts";
import type { AppendResult, LogStore } from "../types.ts";

type FileHandle = Awaited<ReturnType<typeof open>>;

interface PendingAppend {
  bytes: Uint8Array;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/** Bytes `[start, end)` of a segment file: a stretch of the log's content. */
interface Stretch {
  /** The segment's file name, in the log's folder. */
  file: string;
  start: number;
  end: number;
}

/** A segment's header: the stretches of earlier segments that come before its own records. */
interface SegmentHeader {
  sealed: Stretch[];
}

interface OpenLog {
  /** This epoch's segment, open for appending. */
  handle: FileHandle;
  /** The earlier segments' stretches, in order. */
  sealed: Stretch[];
  /** Their total length. */
  sealedBytes: number;
  /** Where this segment's records start (after its header). */
  recordsStart: number;
  /** Logical bytes known durable: the sealed stretches and this segment's records. */
  length: number;
  queue: PendingAppend[];
  flushing: boolean;
  /** Set once the handle is closed; holders must reopen. */
  closed: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NEWLINE = 10;
const TAIL_SCAN_CHUNK = 64 * 1024;
/** Open handles kept at most; idle logs beyond it are closed (reopened on demand). */
const MAX_OPEN_LOGS = 256;
/** Most bytes a segment's header may take (a log sealed after thousands of takeovers). */
const MAX_HEADER_BYTES = 1024 * 1024;

/** Where the last newline of bytes `[start, end)` of a file ends: the end of its last whole record. */
async function endOfLastRecord(handle: FileHandle, start: number, end: number): Promise<number> {
  while (end > start) {
    const from = Math.max(start, end - TAIL_SCAN_CHUNK);
    const buffer = new Uint8Array(end - from);
    await handle.read(buffer, 0, buffer.length, from);
    const newline = buffer.lastIndexOf(NEWLINE);
    if (newline >= 0) return from + newline + 1;
    end = from;
  }
  return start;
}

/** Reads a segment's header line: its sealed stretches, and where its records start. */
async function readHeader(handle: FileHandle, file: string): Promise<{ header: SegmentHeader; recordsStart: number }> {
  const size = (await handle.stat()).size;
  const buffer = new Uint8Array(Math.min(size, MAX_HEADER_BYTES));
  await handle.read(buffer, 0, buffer.length, 0);
  const newline = buffer.indexOf(NEWLINE);
  const header = newline < 0 ? null : JSON.parse(decoder.decode(buffer.subarray(0, newline))) as SegmentHeader;
  if (!header || !Array.isArray(header.sealed)) {
    throw new StorageError("corrupt", `log segment ${file} has no header (segments are written whole, by rename)`);
  }
  return { header, recordsStart: newline + 1 };
}

/** The segments of the log at `path`, oldest first: the earlier version's plain file (epoch 0), then `~<epoch>` ones. */
async function segmentsOf(path: string): Promise<{ file: string; epoch: number }[]> {
  const name = basename(path);
  let entries: string[];
  try {
    entries = await readdir(dirname(path));
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return [];
    throw error;
  }
  const segments: { file: string; epoch: number }[] = [];
  for (const entry of entries) {
    if (entry === name) segments.push({ file: entry, epoch: 0 });
    else if (entry.startsWith(`${name}~`) && /^\d+$/.test(entry.slice(name.length + 1))) {
      segments.push({ file: entry, epoch: Number(entry.slice(name.length + 1)) });
    }
  }
  return segments.sort((a, b) => a.epoch - b.epoch);
}

/** Creates the log store rooted at `root`, writing as holder epoch `epoch` of the data directory. */
export function createFsLogStore(
  root: string,
  epoch: number,
  ensureOpen: () => void,
): LogStore & { closeAll(): Promise<void> } {
  const openLogs = new Map<string, OpenLog>();
  const opening = new Map<string, Promise<OpenLog | null>>();
  const ownSuffix = `~${epoch}`;

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

  /**
   * Writes this epoch's segment of `path` whole (temp file, rename), its
   * header sealing `sealed`. The rename is what a takeover fences: it fails
   * once the data folder has moved.
   */
  const createOwnSegment = async (path: string, sealed: Stretch[]) => {
    await makeDirectoryBelow(root, dirname(path));
    const temp = tempPathIn(root);
    try {
      const handle = await open(temp, "w");
      try {
        await writeFully(handle, encoder.encode(JSON.stringify({ sealed } satisfies SegmentHeader) + "\n"));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path + ownSuffix);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
    await syncDirectory(dirname(path));
  };

  /** The stretches of the log up to and including segment `newest` (another epoch's), as found now, made durable. */
  const sealUpTo = async (path: string, newest: { file: string; epoch: number }): Promise<Stretch[]> => {
    const handle = await open(join(dirname(path), newest.file), "r+");
    try {
      // Its bytes may be another process's, not yet flushed: the seal must not outlive them.
      await handle.sync();
      const size = (await handle.stat()).size;
      const { header, recordsStart } = newest.epoch === 0
        ? { header: { sealed: [] }, recordsStart: 0 }
        : await readHeader(handle, newest.file);
      const end = await endOfLastRecord(handle, recordsStart, size);
      return [...header.sealed, { file: newest.file, start: recordsStart, end }];
    } finally {
      await handle.close();
    }
  };

  const doOpen = async (key: string, create: boolean): Promise<OpenLog | null> => {
    const path = pathOf(key);
    try {
      const segments = await segmentsOf(path);
      const newest = segments.at(-1);
      if (newest && newest.epoch > epoch) {
        throw new StorageError("locked", `log ${key} has a segment of a later holder: this process lost the data directory`);
      }
      if (!newest && !create) return null;
      if (newest?.epoch !== epoch) await createOwnSegment(path, newest ? await sealUpTo(path, newest) : []);
      const handle = await open(path + ownSuffix, "a+");
      const { header, recordsStart } = await readHeader(handle, basename(path) + ownSuffix);
      const size = (await handle.stat()).size;
      const end = await endOfLastRecord(handle, recordsStart, size);
      if (end < size) {
        await handle.truncate(end);
        await handle.sync();
      }
      const sealedBytes = header.sealed.reduce((sum, stretch) => sum + stretch.end - stretch.start, 0);
      const log: OpenLog = {
        handle,
        sealed: header.sealed,
        sealedBytes,
        recordsStart,
        length: sealedBytes + end - recordsStart,
        queue: [],
        flushing: false,
        closed: false,
      };
      openLogs.set(key, log);
      await evictIdle();
      return log;
    } catch (error) {
      if (error instanceof StorageError) throw error;
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

  /** Streams logical bytes `[from, end)` of `log`: its sealed stretches, then its own records. */
  const streamOf = (path: string, log: OpenLog, from: number, end: number): ReadableStream<Uint8Array> => {
    const own: Stretch = { file: basename(path) + ownSuffix, start: log.recordsStart, end: log.recordsStart + end - log.sealedBytes };
    const parts: Stretch[] = [];
    let at = 0;
    for (const stretch of [...log.sealed, own]) {
      const length = stretch.end - stretch.start;
      const skip = Math.max(0, from - at);
      const take = Math.min(length, end - at);
      if (take > skip) parts.push({ file: stretch.file, start: stretch.start + skip, end: stretch.start + take });
      at += length;
    }
    if (parts.length === 1) return fileStream(join(dirname(path), parts[0].file), parts[0].start, parts[0].end);
    let index = 0;
    let current: ReadableStreamDefaultReader<Uint8Array> | null = null;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          if (!current) {
            const part = parts[index++];
            if (!part) return controller.close();
            current = fileStream(join(dirname(path), part.file), part.start, part.end).getReader();
          }
          const { value, done } = await current.read();
          if (!done) return controller.enqueue(value);
          current = null;
        }
      },
      cancel: (reason) => current?.cancel(reason),
    }, { highWaterMark: 0 });
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
      if (!log) return new ReadableStream({ start: (controller) => controller.close() });
      return streamOf(path, log, Math.min(fromOffset, log.length), log.length);
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
      let deleted = false;
      try {
        for (const segment of await segmentsOf(path)) {
          if (await deleteFile(join(dirname(path), segment.file), `log ${key}`, key)) deleted = true;
        }
      } catch (error) {
        if (error instanceof StorageError) throw error;
        throw ioError(`cannot delete log ${key}`, error, key);
      }
      return deleted;
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
