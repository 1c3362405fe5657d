/**
 * Writes the state a crash leaves behind straight into storage, so recovery
 * can be tested against exactly that state.
 */
import { createFileService } from "../../src/batch/files/file_service.ts";
import { newBatchId } from "../../src/batch/model/ids.ts";
import { type BatchRecord, type BatchStatus, emptyUsage } from "../../src/batch/model/objects.ts";
import { failureRecord, responseRecord } from "../../src/engine/lines/result_records.ts";
import { activeBatchKey, batchDocKey, errorLogKey, outputLogKey } from "../../src/batch/model/storage_keys.ts";
import { MarkingSha256 } from "../../src/integrity/digest_marks.ts";
import type { Storage } from "../../src/storage/types.ts";
import { line } from "./engine.ts";

export interface CrashedBatch {
  id: string;
  customIds: string[];
  record: BatchRecord;
}

/**
 * A batch of `count` lines, `status`, with results for `done` (1-based lines) already in its logs.
 * `markEvery` records the input's digest marks that far apart (the upload's default otherwise).
 */
export async function writeCrashedBatch(
  storage: Storage,
  options: { count: number; done: number[]; failed?: number[]; status?: BatchStatus; expiresAt?: number; markEvery?: number },
): Promise<CrashedBatch> {
  const customIds = Array.from({ length: options.count }, (_, i) => `line-${i + 1}`);
  const files = createFileService(storage);
  const content = new TextEncoder().encode(customIds.map((id) => line(id, "m")).join("\n") + "\n");
  const received = await files.receive({ owner: "default", filename: "in.jsonl", purpose: "batch", content });
  const file = await files.commit(received, { purpose: "batch" });
  const now = Math.floor(Date.now() / 1000);
  const id = newBatchId();
  const record: BatchRecord = {
    batch: {
      id,
      object: "batch",
      endpoint: "/v1/chat/completions",
      model: "m",
      input_file_id: file.id,
      completion_window: "24h",
      status: options.status ?? "in_progress",
      output_file_id: null,
      error_file_id: null,
      metadata: null,
      errors: null,
      created_at: now - 10,
      in_progress_at: now - 9,
      expires_at: options.expiresAt ?? now + 86400,
      finalizing_at: null,
      completed_at: null,
      failed_at: null,
      expired_at: null,
      cancelling_at: options.status === "cancelling" ? now - 1 : null,
      cancelled_at: null,
      request_counts: { total: options.count, completed: 0, failed: 0 },
      usage: emptyUsage(),
    },
    owner: "default",
    input_digest: options.markEvery === undefined
      ? { sha256: received.sha256, bytes: received.bytes, marks: received.marks }
      : new MarkingSha256(options.markEvery).update(content).finish(),
    input_lines: options.count,
    output_expires_after_seconds: null,
    planned_output_file_id: null,
    planned_error_file_id: null,
  };
  await storage.documents.put(batchDocKey("default", id), record);
  await storage.documents.put(activeBatchKey(id), { owner: "default" });
  const outputs = options.done.map((n) =>
    responseRecord(n, customIds[n - 1], {
      status_code: 200,
      request_id: null,
      body: { usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
    })
  );
  if (outputs.length) await storage.logs.append(outputLogKey(id), outputs);
  const failures = (options.failed ?? []).map((n) =>
    failureRecord(n, customIds[n - 1], { code: "connection_error", message: "x" })
  );
  if (failures.length) await storage.logs.append(errorLogKey(id), failures);
  return { id, customIds, record };
}
