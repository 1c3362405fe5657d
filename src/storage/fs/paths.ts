/**
 * Low-level file helpers for the fs adapter: atomic replace, directory fsync,
 * ranged file streams, recursive key listing and leftover temp cleanup.
 *
 * Each area (`blobs/`, `docs/`, …) writes its temp files in its own `.tmp/`
 * folder, then renames them into place (the same file system, so atomic).
 * Keys can never start with a dot, so that folder is never listed and never
 * collides with a key; and leftovers of a crash are found with one `readdir`,
 * however many keys the area holds. Earlier versions wrote `.tmp-…` files
 * beside their targets; a directory of theirs is searched for them once.
 *
 * @module
 */
import { mkdir, open, readdir, rename, rm, unlink } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { StorageError } from "../errors.ts";

/** Name of an area's temp folder. */
export const TEMP_FOLDER = ".tmp";
/** Prefix of the temp files earlier versions left beside their targets. */
const SCATTERED_TEMP_PREFIX = ".tmp-";
/**
 * Bytes per read of a file stream. Each read allocates its own buffer (a
 * stream's chunks belong to its reader); at 64 KiB the allocators recycle
 * them, where larger ones left Bun's process larger, for no gain in speed.
 */
const READ_CHUNK = 64 * 1024;

/** Error codes that mean "this platform cannot fsync a directory"; nothing to do then. */
const DIR_SYNC_UNSUPPORTED = new Set(["EISDIR", "EINVAL", "EPERM", "EBADF", "ENOTSUP"]);

/** The `code` of a Node-style system error, if any. */
export function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Wraps an unexpected file-system error into a `StorageError("io")`. */
export function ioError(message: string, cause: unknown, key?: string): StorageError {
  return new StorageError("io", `${message}: ${(cause as Error)?.message ?? cause}`, { key, cause });
}

/**
 * Deletes the file at `path`, then makes that durable (fsync of its folder).
 * False when there was none.
 *
 * @throws {StorageError} `io` naming `what` (e.g. `blob files/x`) when it cannot
 */
export async function deleteFile(path: string, what: string, key: string): Promise<boolean> {
  try {
    await unlink(path);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return false;
    throw ioError(`cannot delete ${what}`, error, key);
  }
  await syncDirectory(dirname(path)).catch((error) => {
    throw ioError(`cannot delete ${what}`, error, key);
  });
  return true;
}

/** A fresh temp file path in the temp folder of the area rooted at `root`. */
export function tempPathIn(root: string): string {
  return join(root, TEMP_FOLDER, crypto.randomUUID());
}

/**
 * Makes a rename or create in `dir` durable by fsyncing the directory itself.
 * Platforms that cannot open a directory for syncing are skipped.
 */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (error) {
    if (!DIR_SYNC_UNSUPPORTED.has(errnoCode(error) ?? "")) throw error;
  } finally {
    await handle?.close();
  }
}

/**
 * Creates the folder `dir` and the folders between it and `root`, each made
 * durable in its parent (fsync), but never `root` itself: a storage whose
 * data folder was moved away by a takeover (`fs_storage.ts`) must not
 * create it again, so this fails with `ENOENT` then.
 */
export async function makeDirectoryBelow(root: string, dir: string): Promise<void> {
  try {
    await mkdir(dir);
  } catch (error) {
    if (errnoCode(error) === "EEXIST") return;
    const rel = relative(root, dir);
    if (errnoCode(error) !== "ENOENT" || rel === "" || rel.startsWith("..")) throw error;
    await makeDirectoryBelow(root, dirname(dir));
    try {
      await mkdir(dir);
    } catch (again) {
      if (errnoCode(again) === "EEXIST") return;
      throw again;
    }
  }
  await syncDirectory(dirname(dir));
}

/**
 * Atomically replaces `path` with `data`: a temp file in the area's temp
 * folder (`root` is the area), write, fsync, rename over the target, fsync of
 * its directory. A crash at any point leaves either the old content or the
 * new one, never a mix.
 */
export async function replaceFileAtomically(path: string, root: string, data: Uint8Array): Promise<void> {
  const dir = dirname(path);
  await makeDirectoryBelow(root, dir);
  const temp = tempPathIn(root);
  try {
    const handle = await open(temp, "w");
    try {
      await writeFully(handle, data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
  await syncDirectory(dir);
}

/** A file handle's positional writes, as `node:fs/promises` has them. */
export interface PositionalWriter {
  writev(buffers: Uint8Array[], position: number): Promise<{ bytesWritten: number }>;
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
}

/**
 * Writes every byte of `parts`, in order, from `position` on, continuing after
 * a partial write: several parts with one vectored write, one part with a plain
 * positional write.
 */
export async function writevFully(handle: PositionalWriter, parts: Uint8Array[], position: number): Promise<void> {
  let rest = parts;
  for (let at = position; rest.length > 0;) {
    const { bytesWritten } = rest.length === 1
      ? await handle.write(rest[0], 0, rest[0].length, at)
      : await handle.writev(rest, at);
    at += bytesWritten;
    rest = partsAfter(rest, bytesWritten);
  }
}

/** What is left of `parts` once its first `count` bytes are written. */
function partsAfter(parts: Uint8Array[], count: number): Uint8Array[] {
  let skip = count;
  let index = 0;
  while (index < parts.length && skip >= parts[index].length) skip -= parts[index++].length;
  const rest = parts.slice(index);
  if (skip > 0) rest[0] = rest[0].subarray(skip);
  return rest;
}

/** Writes every byte of `data` at the handle's position (or appends in append mode). */
export async function writeFully(
  handle: { write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }> },
  data: Uint8Array,
): Promise<void> {
  let written = 0;
  while (written < data.length) {
    const { bytesWritten } = await handle.write(data, written, data.length - written);
    written += bytesWritten;
  }
}

/**
 * Streams bytes `[start, end)` of a file. The file is opened on the first pull
 * and closed when the stream ends or is cancelled.
 */
export function fileStream(path: string, start: number, end: number): ReadableStream<Uint8Array> {
  let position = start;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  const closeHandle = async () => {
    const h = handle;
    handle = undefined;
    await h?.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const want = Math.min(READ_CHUNK, end - position);
        if (want <= 0) {
          await closeHandle();
          controller.close();
          return;
        }
        handle ??= await open(path, "r");
        const buffer = new Uint8Array(want);
        const { bytesRead } = await handle.read(buffer, 0, want, position);
        if (bytesRead === 0) {
          await closeHandle();
          controller.close();
          return;
        }
        position += bytesRead;
        controller.enqueue(bytesRead === want ? buffer : buffer.subarray(0, bytesRead));
      } catch (error) {
        await closeHandle().catch(() => {});
        controller.error(ioError(`cannot read ${path}`, error));
      }
    },
    cancel: closeHandle,
    // One chunk is read ahead, so the disk read overlaps the consumer's work on the previous one.
  }, { highWaterMark: 1 });
}

/**
 * Lists the keys of the files below `root` that start with `prefix`, sorted.
 * `suffix` (e.g. `.json`) is stripped from file names; hidden entries are skipped.
 */
export async function listKeysUnder(root: string, prefix: string, suffix = ""): Promise<string[]> {
  const slash = prefix.lastIndexOf("/");
  const baseKey = slash >= 0 ? prefix.slice(0, slash) : "";
  const keys: string[] = [];
  const walk = async (dir: string, keyPrefix: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return;
      throw ioError(`cannot list ${dir}`, error);
    }
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const key = keyPrefix ? `${keyPrefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (prefix.startsWith(key + "/") || (key + "/").startsWith(prefix) || key.startsWith(prefix)) {
          await walk(join(dir, entry.name), key);
        }
      } else if (entry.name.endsWith(suffix)) {
        const fileKey = suffix ? key.slice(0, -suffix.length) : key;
        if (fileKey.startsWith(prefix)) keys.push(fileKey);
      }
    }
  };
  await walk(baseKey ? join(root, baseKey) : root, baseKey);
  return keys.sort();
}

/**
 * Makes the area rooted at `root` ready: creates it and its temp folder, and
 * empties the temp folder of what writes a crash interrupted left there.
 * Returns how many were removed.
 */
export async function prepareArea(root: string): Promise<number> {
  const temps = join(root, TEMP_FOLDER);
  await makeDirectoryBelow(dirname(root), temps);
  const leftovers = await readdir(temps);
  for (const name of leftovers) await rm(join(temps, name), { force: true, recursive: true });
  return leftovers.length;
}

/**
 * Deletes the temp files earlier versions left beside their targets, in every
 * folder below `root` (done once per data directory). Returns how many.
 */
export async function removeScatteredTemps(root: string): Promise<number> {
  let removed = 0;
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return;
      throw error;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith(SCATTERED_TEMP_PREFIX)) {
        await rm(path, { force: true, recursive: true });
        removed++;
      } else if (entry.isDirectory() && entry.name !== TEMP_FOLDER) {
        await walk(path);
      }
    }
  };
  await walk(root);
  return removed;
}
