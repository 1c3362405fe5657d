/**
 * The index of files that expire, ordered by expiry time: a sweep reads only
 * what has expired, however many files there are.
 *
 * An entry is written before its file's record and removed after it, so a
 * crash leaves an entry without a record (dropped by the next sweep), never a
 * record that no sweep finds. Stores written before the index existed are
 * indexed once, by their first sweep.
 *
 * @module
 */
import type { Storage } from "../../storage/types.ts";
import type { FileRecord } from "../model/objects.ts";
import { EXPIRY_INDEX_MARKER, FILE_EXPIRY_PREFIX, fileDocKey, fileExpiryKey, parseFileExpiryKey } from "../model/storage_keys.ts";

/**
 * The expiry index of one store's files.
 *
 * @example
 * ```ts
 * const expiries = new FileExpiryIndex(storage);
 * await expiries.add(record); // before the record is written
 * await expiries.sweep(nowSeconds, (record) => removeFile(record));
 * ```
 */
export class FileExpiryIndex {
  readonly #storage: Storage;

  constructor(storage: Storage) {
    this.#storage = storage;
  }

  /** Indexes a file that expires (nothing for one that does not). */
  async add(record: FileRecord): Promise<void> {
    const expiresAt = record.file.expires_at;
    if (expiresAt !== null) await this.#storage.documents.put(fileExpiryKey(expiresAt, record.file.id), { owner: record.owner });
  }

  /** Forgets a file's entry. */
  async remove(record: FileRecord): Promise<void> {
    if (record.file.expires_at !== null) await this.#storage.documents.delete(fileExpiryKey(record.file.expires_at, record.file.id));
  }

  /** Calls `expired` with each file whose expiry is at or before `nowSeconds`, and drops their entries. */
  async sweep(nowSeconds: number, expired: (record: FileRecord) => Promise<void>): Promise<void> {
    const documents = this.#storage.documents;
    if (!(await documents.get(EXPIRY_INDEX_MARKER))) await this.#indexEarlierFiles();
    for (;;) {
      const page = await documents.list(FILE_EXPIRY_PREFIX, { limit: 1000 });
      for (const key of page.keys) {
        const entry = parseFileExpiryKey(key);
        if (!entry || entry.expiresAt > nowSeconds) return;
        const owner = (await documents.get<{ owner: string }>(key))?.value.owner;
        const doc = owner === undefined ? null : await documents.get<FileRecord>(fileDocKey(owner, entry.fileId));
        const expiresAt = doc?.value.file.expires_at ?? null;
        if (doc && expiresAt !== null && expiresAt <= nowSeconds) await expired(doc.value);
        await documents.delete(key);
      }
      if (!page.more) return;
    }
  }

  /** Indexes the files recorded before the index existed (once per store). */
  async #indexEarlierFiles(): Promise<void> {
    const documents = this.#storage.documents;
    let after: string | undefined;
    for (;;) {
      const page = await documents.list("tenants/", { after, limit: 1000 });
      for (const key of page.keys) {
        after = key;
        if (!key.includes("/files/")) continue;
        const doc = await documents.get<FileRecord>(key);
        if (doc) await this.add(doc.value);
      }
      if (!page.more) break;
    }
    await documents.put(EXPIRY_INDEX_MARKER, { built: true });
  }
}
