/**
 * The local ledger's restart: every batch in the index of batches that have
 * not ended (`active/<id>`) is loaded with its document, and its finished
 * lines are learned from the newest valid checkpoint plus the logs' tails (or
 * a full scan of its logs), so that only the other lines are sent again.
 * Memory holds one bit per line, never the results.
 *
 * @module
 */
import type { Logger } from "../../../shared/logger.ts";
import { isStorageError } from "../../../storage/errors.ts";
import type { Storage } from "../../../storage/types.ts";
import { type BatchRecord, FINAL_STATUSES } from "../../../batch/model/objects.ts";
import { ACTIVE_PREFIX, batchDocKey, errorLogKey, outputLogKey } from "../../../batch/model/storage_keys.ts";
import type { StopReason } from "../ledger.ts";
import { BatchProgress } from "./batch_progress.ts";
import type { BatchSnapshot, Checkpoint } from "./checkpoints.ts";

/** A batch's entry in the index of batches that have not ended: its owner, and its stop once it must stop. */
export interface ActiveEntry {
  owner: string;
  stop?: StopReason;
  /** Why it failed (an `errors.data` entry as JSON), for a stop of `fail`. */
  failure?: string;
}

/** A batch found unfinished at start. */
export interface RecoveredBatch {
  record: BatchRecord;
  entry: ActiveEntry;
  /** What its logs hold, once its lines run (null while it validates). */
  progress: BatchProgress | null;
}

/**
 * Reads the batches that have not ended. An index entry whose batch ended (or
 * was never written) is removed; a document that fails its integrity check is
 * reported and its batch left alone, never trusted.
 */
export async function recoverBatches(storage: Storage, logger: Logger, latest: Checkpoint | null): Promise<RecoveredBatch[]> {
  if (latest) logger.info(`recovering from checkpoint ${latest.sequence}`);
  let after: string | undefined;
  const recovered: RecoveredBatch[] = [];
  for (;;) {
    const page = await storage.documents.list(ACTIVE_PREFIX, { after, limit: 1000 });
    for (const key of page.keys) {
      after = key;
      const batchId = key.slice(ACTIVE_PREFIX.length);
      try {
        const entry = await storage.documents.get<ActiveEntry>(key);
        const doc = entry && await storage.documents.get<BatchRecord>(batchDocKey(entry.value.owner, batchId));
        if (!entry || !doc || FINAL_STATUSES.has(doc.value.batch.status)) {
          // The batch ended (or never got written) just before a crash: only the index entry is left.
          await storage.documents.delete(key);
          continue;
        }
        const progress = doc.value.batch.in_progress_at === null
          ? null
          : await recoverProgress(storage, logger, doc.value, latest?.snapshot.batches[batchId]);
        recovered.push({ record: doc.value, entry: entry.value, progress });
      } catch (error) {
        if (!isStorageError(error, "corrupt")) throw error;
        logger.error(`batch ${batchId} was not resumed: ${(error as Error).message}`);
      }
    }
    if (!page.more) break;
  }
  return recovered;
}

/** Rebuilds a batch's progress from a checkpoint's snapshot and the logs' tails. */
async function recoverProgress(
  storage: Storage,
  logger: Logger,
  record: BatchRecord,
  fromCheckpoint: BatchSnapshot | undefined,
): Promise<BatchProgress> {
  const id = record.batch.id;
  const lines = record.input_lines;
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
  await absorbLogTails(storage, logger, id, progress);
  logger.info(
    `batch ${id}: resumed at ${progress.finished}/${record.batch.request_counts.total} ` +
      `(${fromCheckpoint?.progress ? `checkpoint + ${tail} log bytes` : `full scan of ${outLength + errLength} log bytes`})`,
  );
  return progress;
}

/** Marks finished every line whose record is in the batch's logs past what `progress` already knows. */
export async function absorbLogTails(storage: Storage, logger: Logger, id: string, progress: BatchProgress): Promise<void> {
  for (
    const [kind, key, from] of [
      ["output", outputLogKey(id), progress.outputLength],
      ["errors", errorLogKey(id), progress.errorLength],
    ] as const
  ) {
    const report = await progress.absorbLog(kind, await storage.logs.read(key, from), from);
    if (report.unreadable || report.duplicates) {
      logger.warn(`batch ${id}: ${kind} log has ${report.unreadable} unreadable and ${report.duplicates} duplicate record(s); ignored`);
    }
  }
}
