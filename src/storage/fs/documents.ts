/**
 * Documents on the file system: `<root>/<key>.json`, each a SHA-256 envelope
 * around `{version, value}`.
 *
 * Durability: every `put` is an atomic replace (temp file, fsync, rename, fsync
 * of the directory), so readers — in this process or another — see the old
 * document or the new one, never a torn one. A document that fails its hash is
 * reported as `corrupt`, never returned.
 *
 * Compare-and-swap is serialised per key inside this process; the directory
 * lock ensures no other process writes the same data directory.
 *
 * Listing: a folder of documents, once listed, has its sorted names kept in
 * memory and kept current by this store's writes (it is the folder's only
 * writer), so a page of a folder of 10,000 documents is a binary search, not
 * a `readdir` and a sort of all of them.
 *
 * @module
 */
import { readFile as readFileWithCallback } from "node:fs";
import { readdir } from "node:fs/promises";
import { promisify } from "node:util";
import { join } from "node:path";
import { IntegrityError, openEnvelope, sealEnvelope } from "../../integrity/envelope.ts";
import { StorageError } from "../errors.ts";
import { deleteFile, errnoCode, ioError, listKeysUnder, replaceFileAtomically } from "./paths.ts";
import { assertValidKey, assertValidPrefix } from "../keys.ts";
import { DEFAULT_LIST_LIMIT, pageKeys } from "../page_keys.ts";
import type { DocumentStore, KeyPage, ListOptions, StoredDocument, WriteCondition } from "../types.ts";

const SUFFIX = ".json";
/**
 * `node:fs`'s callback `readFile`: on Node, `fs/promises`' takes about twice
 * as long for a small file (more round trips to the thread pool), and a list
 * page reads a hundred documents.
 */
const readFile = promisify(readFileWithCallback);
const encoder = new TextEncoder();

interface DocumentPayload {
  version: number;
  value: unknown;
}

/** Creates the document store rooted at `root`. */
export function createFsDocumentStore(root: string, ensureOpen: () => void): DocumentStore {
  const tails = new Map<string, Promise<unknown>>();
  const folders = new FolderListings(root);
  const pathOf = (key: string) => {
    ensureOpen();
    assertValidKey(key);
    return join(root, key + SUFFIX);
  };

  /** Runs `task` after every earlier task on the same key (a per-key mutex). */
  const serialised = <T>(key: string, task: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => {});
    tails.set(key, tail);
    tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return result;
  };

  const read = async (key: string, path: string): Promise<DocumentPayload | null> => {
    let text;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return null;
      throw ioError(`cannot read document ${key}`, error, key);
    }
    try {
      return openEnvelope<DocumentPayload>(text);
    } catch (error) {
      if (error instanceof IntegrityError) {
        throw new StorageError("corrupt", `document ${key} failed its integrity check: ${error.message}`, {
          key,
          cause: error,
        });
      }
      throw error;
    }
  };

  const check = (key: string, current: number, condition: WriteCondition | undefined) => {
    if (condition?.ifVersion !== undefined && condition.ifVersion !== current) {
      throw new StorageError("conflict", `document ${key} is at version ${current}, not ${condition.ifVersion}`, {
        key,
      });
    }
  };

  return {
    async get<T>(key: string): Promise<StoredDocument<T> | null> {
      const payload = await read(key, pathOf(key));
      return payload ? { value: payload.value as T, version: payload.version } : null;
    },

    async put<T>(key: string, value: T, condition?: WriteCondition): Promise<number> {
      const path = pathOf(key);
      return serialised(key, async () => {
        const current = (await readVersionForWrite(key, path, condition)) ?? 0;
        check(key, current, condition);
        const version = current + 1;
        try {
          await replaceFileAtomically(path, root, encoder.encode(sealEnvelope({ version, value })));
        } catch (error) {
          throw ioError(`cannot write document ${key}`, error, key);
        }
        if (current === 0) folders.added(key);
        return version;
      });
    },

    async delete(key: string, condition?: WriteCondition): Promise<boolean> {
      const path = pathOf(key);
      return serialised(key, async () => {
        const current = await readVersionForWrite(key, path, condition);
        check(key, current ?? 0, condition);
        if (current === null) return false;
        const deleted = await deleteFile(path, `document ${key}`, key);
        folders.removed(key);
        return deleted;
      });
    },

    async list(prefix: string, options?: ListOptions): Promise<KeyPage> {
      ensureOpen();
      assertValidPrefix(prefix);
      const folder = prefix.endsWith("/") ? await folders.names(prefix.slice(0, -1)) : null;
      if (folder) return pageNames(folder, prefix, options);
      return pageKeys(await listKeysUnder(root, prefix, SUFFIX), prefix, options);
    },
  };

  /**
   * The current version before a write. An unconditional write may replace a
   * corrupt document (it starts again from its own version); a conditional one
   * may not, since the caller's expectation cannot be checked.
   */
  async function readVersionForWrite(
    key: string,
    path: string,
    condition: WriteCondition | undefined,
  ): Promise<number | null> {
    try {
      return (await read(key, path))?.version ?? null;
    } catch (error) {
      if (error instanceof StorageError && error.code === "corrupt" && condition?.ifVersion === undefined) {
        return 0;
      }
      throw error;
    }
  }
}

/**
 * The sorted document names of folders that hold only documents, read once
 * and then kept current by {@link FolderListings.added} and
 * {@link FolderListings.removed}.
 */
class FolderListings {
  readonly #root: string;
  /** Folder key → its documents' names, sorted; null for a folder that also holds folders (listed by a walk). */
  readonly #folders = new Map<string, string[] | null>();

  constructor(root: string) {
    this.#root = root;
  }

  /** The sorted names of the documents directly in `folder`, or null when it holds folders too. */
  async names(folder: string): Promise<string[] | null> {
    const known = this.#folders.get(folder);
    if (known !== undefined) return known;
    let entries;
    try {
      entries = await readdir(join(this.#root, folder), { withFileTypes: true });
    } catch (error) {
      if (errnoCode(error) === "ENOENT" || errnoCode(error) === "ENOTDIR") return [];
      throw ioError(`cannot list ${folder}`, error);
    }
    let names: string[] | null = [];
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      if (entry.isDirectory()) {
        names = null;
        break;
      }
      if (entry.name.endsWith(SUFFIX)) names.push(entry.name.slice(0, -SUFFIX.length));
    }
    names?.sort();
    // A write may have landed while the folder was read: what it changed is kept, the read is not.
    if (this.#folders.has(folder)) return this.#folders.get(folder)!;
    this.#folders.set(folder, names);
    return names;
  }

  /** A document was created. */
  added(key: string): void {
    const { folder, name } = split(key);
    const names = this.#folders.get(folder);
    if (names) {
      const at = lowerBound(names, name);
      if (names[at] !== name) names.splice(at, 0, name);
    }
    // Every folder above it now holds a folder.
    for (let above = folder; above !== "";) {
      above = split(above).folder;
      if (this.#folders.get(above)) this.#folders.set(above, null);
    }
  }

  /** A document was deleted. */
  removed(key: string): void {
    const { folder, name } = split(key);
    const names = this.#folders.get(folder);
    if (!names) return;
    const at = lowerBound(names, name);
    if (names[at] === name) names.splice(at, 1);
  }
}

function split(key: string): { folder: string; name: string } {
  const slash = key.lastIndexOf("/");
  return { folder: slash < 0 ? "" : key.slice(0, slash), name: key.slice(slash + 1) };
}

/** The first index of sorted `names` whose name is not below `name`. */
function lowerBound(names: readonly string[], name: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (names[mid] < name) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** One page of a folder's documents (`prefix` is the folder's key and a slash), as `pageKeys` pages keys. */
function pageNames(names: readonly string[], prefix: string, options: ListOptions = {}): KeyPage {
  const limit = options.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  const after = options.after;
  const keys: string[] = [];
  if (options.reverse) {
    // Names below `after`, from the highest down.
    let at = after === undefined ? names.length - 1 : afterBelow(names, prefix, after);
    for (; at >= 0 && keys.length < limit; at--) keys.push(prefix + names[at]);
    return { keys, more: at >= 0 };
  }
  let at = after === undefined ? 0 : afterAbove(names, prefix, after);
  for (; at < names.length && keys.length < limit; at++) keys.push(prefix + names[at]);
  return { keys, more: at < names.length };
}

/** The index of the last name whose key sorts below `after`. */
function afterBelow(names: readonly string[], prefix: string, after: string): number {
  if (!after.startsWith(prefix)) return after > prefix ? names.length - 1 : -1;
  return lowerBound(names, after.slice(prefix.length)) - 1;
}

/** The index of the first name whose key sorts above `after`. */
function afterAbove(names: readonly string[], prefix: string, after: string): number {
  if (!after.startsWith(prefix)) return after < prefix ? 0 : names.length;
  const name = after.slice(prefix.length);
  const at = lowerBound(names, name);
  return names[at] === name ? at + 1 : at;
}
