/**
 * Resuming after a restart: every batch in the index of batches that have not
 * ended is loaded, and its finished lines are learned from the newest valid
 * checkpoint plus the logs' tails (or a full scan of its logs), so that only
 * the other lines are sent. Memory holds one bit per line, never the results.
 *
 * @module
 */
import { isStorageError } from "../../storage/errors.ts";
import { type BatchRecord, FINAL_STATUSES } from "../model/objects.ts";
import { ACTIVE_PREFIX, batchDocKey, errorLogKey, outputLogKey } from "../model/storage_keys.ts";
import { activate, type ActiveBatch, attachProgress } from "../run/active_batch.ts";
import { BatchProgress } from "../run/batch_progress.ts";
import type { BatchSnapshot, Checkpoint } from "./checkpoints.ts";
import type { EngineContext } from "./context.ts";

/**
 * Loads the batches that have not ended, with their progress, into
 * `context.active`, and returns them. A document that fails its integrity
 * check is reported and its batch left alone, never trusted.
 */
export async function recoverBatches(context: EngineContext, latest: Checkpoint | null): Promise<ActiveBatch[]> {
  const { storage, logger } = context;
  if (latest) logger.info(`recovering from checkpoint ${latest.sequence}`);
  let after: string | undefined;
  const resumed: ActiveBatch[] = [];
  for (;;) {
    const page = await storage.documents.list(ACTIVE_PREFIX, { after, limit: 1000 });
    for (const key of page.keys) {
      after = key;
      const batchId = key.slice(ACTIVE_PREFIX.length);
      try {
        const entry = await storage.documents.get<{ owner: string }>(key);
        const doc = entry && await storage.documents.get<BatchRecord>(batchDocKey(entry.value.owner, batchId));
        if (!doc || FINAL_STATUSES.has(doc.value.batch.status)) {
          // The batch ended (or never got written) just before a crash: only the index entry is left.
          await storage.documents.delete(key);
          continue;
        }
        const batch = activate(doc.value, doc.version);
        if (doc.value.batch.status === "cancelling") batch.stop = "cancel";
        if (doc.value.batch.status !== "validating") {
          await recoverProgress(context, batch, latest?.snapshot.batches[batchId]);
        }
        context.active.set(batchId, batch);
        resumed.push(batch);
      } catch (error) {
        if (!isStorageError(error, "corrupt")) throw error;
        logger.error(`batch ${batchId} was not resumed: ${(error as Error).message}`);
      }
    }
    if (!page.more) break;
  }
  return resumed;
}

/** Rebuilds a resumed batch's progress from a checkpoint's snapshot and the logs' tails. */
async function recoverProgress(context: EngineContext, batch: ActiveBatch, fromCheckpoint: BatchSnapshot | undefined): Promise<void> {
  const { storage, logger } = context;
  const id = batch.record.batch.id;
  const lines = batch.record.input_lines;
  const outLength = await storage.logs.length(outputLogKey(id));
  const errLength = await storage.logs.length(errorLogKey(id));
  let progress: BatchProgress | null = null;
  const saved = fromCheckpoint?.progress;
  if (saved && saved.lines === lines && saved.outputLength <= outLength && saved.errorLength <= errLength) {
    try {
      progress = BatchProgress.fromSnapshot(saved);
    } catch (error) {
      logger.warn(`batch ${id}: checkpoint progress unusable (${(error as Error).message}); scanning its logs`);
    }
  }
  progress ??= new BatchProgress(lines);
  const tail = outLength - progress.outputLength + errLength - progress.errorLength;
  await absorbLogTails(context, id, progress);
  attachProgress(batch, progress, storage, context.clock, context.run.observer);
  logger.info(
    `batch ${id}: resumed at ${progress.finished}/${batch.record.batch.request_counts.total} ` +
      `(${fromCheckpoint?.progress ? `checkpoint + ${tail} log bytes` : `full scan of ${outLength + errLength} log bytes`})`,
  );
}

/** Marks finished every line whose record is in the batch's logs past what `progress` already knows. */
export async function absorbLogTails(context: EngineContext, id: string, progress: BatchProgress): Promise<void> {
  for (const [kind, key, from] of [
    ["output", outputLogKey(id), progress.outputLength],
    ["errors", errorLogKey(id), progress.errorLength],
  ] as const) {
    const report = await progress.absorbLog(kind, await context.storage.logs.read(key, from), from);
    if (report.unreadable || report.duplicates) {
      context.logger.warn(
        `batch ${id}: ${kind} log has ${report.unreadable} unreadable and ${report.duplicates} duplicate record(s); ignored`,
      );
    }
  }
}
