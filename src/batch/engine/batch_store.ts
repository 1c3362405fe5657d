/**
 * Where a batch's state is kept: its document (replaced atomically, with
 * compare-and-swap on its version) and its entry in the index of batches that
 * have not ended (`active/<id>`, what recovery resumes).
 *
 * @module
 */
import { activeBatchKey, batchDocKey, fileBlobKey, fileDocKey } from "../model/storage_keys.ts";
import type { BatchRecord } from "../model/objects.ts";
import { activate, type ActiveBatch } from "../run/active_batch.ts";
import { type EngineContext, isInputOfActiveBatch } from "./context.ts";

/**
 * Stores a new batch: the index entry first, so that a crash between the two
 * leaves an entry without a batch (which recovery drops), never a batch that
 * nobody resumes. Returns its in-memory state, already among the active ones.
 */
export async function storeNewBatch(context: EngineContext, record: BatchRecord): Promise<ActiveBatch> {
  const { storage } = context;
  await storage.documents.put(activeBatchKey(record.batch.id), { owner: record.owner });
  const version = await storage.documents.put(batchDocKey(record.owner, record.batch.id), record, { ifVersion: 0 });
  const batch = activate(record, version);
  context.active.set(record.batch.id, batch);
  return batch;
}

/** Writes the batch document (serialised per batch, compare-and-swap on the version last written). */
export function persist(context: EngineContext, batch: ActiveBatch): Promise<void> {
  const write = batch.writes.then(async () => {
    batch.version = await context.storage.documents.put(
      batchDocKey(batch.record.owner, batch.record.batch.id),
      batch.record,
      { ifVersion: batch.version },
    );
  });
  batch.writes = write.catch(() => {});
  return write;
}

/** Reads the stored document's version again (after a write whose outcome is unknown). */
export async function refreshVersion(context: EngineContext, batch: ActiveBatch): Promise<void> {
  const stored = await context.storage.documents.get<BatchRecord>(batchDocKey(batch.record.owner, batch.record.batch.id));
  if (stored) batch.version = stored.version;
  batch.versionUnknown = false;
}

/** A stored batch's record, or null. */
export async function readBatch(context: EngineContext, owner: string, batchId: string): Promise<BatchRecord | null> {
  return (await context.storage.documents.get<BatchRecord>(batchDocKey(owner, batchId)))?.value ?? null;
}

/**
 * Takes an ended batch out of the engine: its timers, its place among the
 * active batches and in the index, and its input's bytes when the input was
 * deleted while the batch ran.
 */
export async function retire(context: EngineContext, batch: ActiveBatch): Promise<void> {
  const { storage, clock } = context;
  for (const timer of batch.timers) clock.clearTimeout(timer);
  batch.timers.clear();
  context.active.delete(batch.record.batch.id);
  context.run.observer.batchEnded?.(batch.record.batch.status);
  await storage.documents.delete(activeBatchKey(batch.record.batch.id));
  const inputId = batch.record.batch.input_file_id;
  if (!isInputOfActiveBatch(context, inputId) && !(await storage.documents.get(fileDocKey(batch.record.owner, inputId)))) {
    await storage.blobs.delete(fileBlobKey(inputId));
  }
}
