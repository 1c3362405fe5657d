/**
 * Finalizing a batch: its logs become `batch_output` files.
 *
 * The result files' ids are reserved in the batch document before any file is
 * recorded, so finalizing again after a crash records the same files, never
 * a second set.
 *
 * @module
 */
import { DEFAULT_MARK_EVERY, type MarkedDigest, MarkingSha256 } from "../../integrity/digest_marks.ts";
import type { Storage } from "../../storage/types.ts";
import type { ActiveBatch } from "../run/active_batch.ts";
import type { FileService } from "../files/file_service.ts";
import type { FileRecord } from "../model/objects.ts";
import type { LogKind } from "../run/batch_progress.ts";
import { errorLogKey, outputLogKey } from "../model/storage_keys.ts";

/** Reads a log back and hashes it: for a log the batch's result writer did not write whole. */
async function hashLog(storage: Storage, key: string): Promise<MarkedDigest> {
  const hash = new MarkingSha256(DEFAULT_MARK_EVERY);
  for await (const chunk of await storage.logs.read(key)) hash.update(chunk);
  return hash.finish();
}

/**
 * Records the batch's non-empty logs as files and sets `output_file_id` and
 * `error_file_id`. The planned ids must already be in the record. A log's
 * digest comes from the batch's result writer when it wrote the whole log,
 * from the log's bytes otherwise.
 */
export async function recordResultFiles(
  storage: Storage,
  files: FileService,
  active: ActiveBatch,
  nowSeconds: number,
): Promise<void> {
  const { record } = active;
  const batch = record.batch;
  const expiresAt = record.output_expires_after_seconds === null ? null : nowSeconds + record.output_expires_after_seconds;
  const results: [string, string | null, "output" | "error", LogKind][] = [
    [outputLogKey(batch.id), record.planned_output_file_id, "output", "output"],
    [errorLogKey(batch.id), record.planned_error_file_id, "error", "errors"],
  ];
  for (const [key, fileId, kind, log] of results) {
    const bytes = await storage.logs.length(key);
    if (bytes === 0 || fileId === null) continue;
    const kept = active.results?.digest(log);
    const { sha256, marks } = kept?.bytes === bytes ? kept : await hashLog(storage, key);
    const fileRecord: FileRecord = {
      file: {
        id: fileId,
        object: "file",
        bytes,
        created_at: nowSeconds,
        filename: `${batch.id}_${kind}.jsonl`,
        purpose: "batch_output",
        status: "processed",
        expires_at: expiresAt,
        status_details: null,
      },
      owner: record.owner,
      sha256,
      marks,
      content: { store: "logs", key },
    };
    await files.adopt(fileRecord);
    if (kind === "output") batch.output_file_id = fileId;
    else batch.error_file_id = fileId;
  }
}
