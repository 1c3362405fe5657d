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
 * @module
 */
import { readFile, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { IntegrityError, openEnvelope, sealEnvelope } from "../integrity/envelope.ts";
import { StorageError } from "./errors.ts";
import { errnoCode, ioError, listKeysUnder, replaceFileAtomically, syncDirectory } from "./fs_paths.ts";
import { assertValidKey, assertValidPrefix } from "./keys.ts";
import { pageKeys } from "./page_keys.ts";
import type { DocumentStore, KeyPage, ListOptions, StoredDocument, WriteCondition } from "./types.ts";

const SUFFIX = ".json";
const encoder = new TextEncoder();

interface DocumentPayload {
  version: number;
  value: unknown;
}

/** Creates the document store rooted at `root`. */
export function createFsDocumentStore(root: string, ensureOpen: () => void): DocumentStore {
  const tails = new Map<string, Promise<unknown>>();
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
          await replaceFileAtomically(path, dirname(path), encoder.encode(sealEnvelope({ version, value })));
        } catch (error) {
          throw ioError(`cannot write document ${key}`, error, key);
        }
        return version;
      });
    },

    async delete(key: string, condition?: WriteCondition): Promise<boolean> {
      const path = pathOf(key);
      return serialised(key, async () => {
        const current = await readVersionForWrite(key, path, condition);
        check(key, current ?? 0, condition);
        if (current === null) return false;
        try {
          await unlink(path);
          await syncDirectory(dirname(path));
          return true;
        } catch (error) {
          if (errnoCode(error) === "ENOENT") return false;
          throw ioError(`cannot delete document ${key}`, error, key);
        }
      });
    },

    async list(prefix: string, options?: ListOptions): Promise<KeyPage> {
      ensureOpen();
      assertValidPrefix(prefix);
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
