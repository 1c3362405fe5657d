/**
 * A batch's document as the engine's steps and API calls write it (on one
 * node or several): every change is a read, a
 * change and a compare-and-swap, tried again when another node wrote first,
 * so no node's change overwrites another's (a cancel arriving while a node
 * validates, a finalizer replaced by another).
 *
 * @module
 */
import { batchDocKey } from "../batch/model/storage_keys.ts";
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
