/**
 * A batch's document as the engine's steps and API calls write it (on one
 * node or several): every change is a read, a
 * change and a compare-and-swap, tried again when another node wrote first,
 * so no node's change overwrites another's (a cancel arriving while a node
 * validates, a finalizer replaced by another). And an owner's records a
 * page at a time, newest first: after a batch (older ones) or before one
 * (newer ones), keeping those a filter wants (one API's batches).
 *
 * @module
 */
import { batchDocKey, batchDocPrefix } from "../batch/model/storage_keys.ts";
import type { BatchRecord } from "../batch/model/objects.ts";
import { StorageError } from "../storage/errors.ts";
import type { Storage } from "../storage/types.ts";

/** Most compare-and-swap attempts of one change; past them the document is changing too fast to be sane. */
const MAX_ATTEMPTS = 50;

/** Reads a batch's record, or null. */
export async function readRecord(storage: Storage, owner: string, batchId: string): Promise<BatchRecord | null> {
  return (await storage.documents.get<BatchRecord>(batchDocKey(owner, batchId)))?.value ?? null;
}

/**
 * Changes a batch's record: `change` edits the record it is given and says
 * whether to write it (false: leave it). Returns the record as it now stands,
 * or null when there is no such batch.
 */
export async function changeRecord(
  storage: Storage,
  owner: string,
  batchId: string,
  change: (record: BatchRecord) => boolean,
): Promise<BatchRecord | null> {
  const key = batchDocKey(owner, batchId);
  for (let attempt = 1;; attempt++) {
    const stored = await storage.documents.get<BatchRecord>(key);
    if (!stored) return null;
    if (!change(stored.value)) return stored.value;
    try {
      await storage.documents.put(key, stored.value, { ifVersion: stored.version });
      return stored.value;
    } catch (error) {
      if (!(error instanceof StorageError && error.code === "conflict") || attempt >= MAX_ATTEMPTS) throw error;
    }
  }
}

/** Where a page starts, how long it is, and which records it keeps. */
export interface ListingOptions {
  /** Older than this batch. */
  after?: string;
  /** Newer than this batch (the page next to it, still newest first). */
  before?: string;
  limit: number;
  keep?: (record: BatchRecord) => boolean;
}

/** Keys read from storage at a time while a filter looks for a page's records. */
const KEYS_PER_READ = 100;

/** A page of an owner's batch records, newest first, and whether more follow in its direction. */
export async function listBatchRecords(
  storage: Storage,
  owner: string,
  { after, before, limit, keep }: ListingOptions,
): Promise<{ records: BatchRecord[]; more: boolean }> {
  const prefix = batchDocPrefix(owner);
  // Without a filter, one more key than the page tells whether more follow.
  const keysPerRead = keep ? KEYS_PER_READ : limit + 1;
  // Newer than `before` means walking forwards from it, and turning the page round.
  const reverse = before === undefined;
  let cursor = before !== undefined ? prefix + before : after !== undefined ? prefix + after : undefined;
  const found: BatchRecord[] = [];
  for (;;) {
    const page = await storage.documents.list(prefix, { reverse, limit: keysPerRead, after: cursor });
    // A page's documents are read at once: one after another, a page cost a read's latency a hundred times.
    const records = await Promise.all(page.keys.map((key) => readRecord(storage, owner, key.slice(prefix.length))));
    for (const record of records) {
      if (record && (!keep || keep(record))) found.push(record);
      if (found.length > limit) break;
    }
    if (found.length > limit || !page.more || !page.keys.length) break;
    cursor = page.keys[page.keys.length - 1];
  }
  const more = found.length > limit;
  const records = found.slice(0, limit);
  return { records: reverse ? records : records.reverse(), more };
}
