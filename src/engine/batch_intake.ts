/**
 * A batch coming in: its record built from a create request (parameters
 * checked, input file found and of purpose `batch`), and its input's check
 * (with the scan made while it was uploaded when there is one, its bytes then
 * proven stretch by stretch as the batch reads them; else by reading it whole).
 *
 * @module
 */
import type { Clock } from "../shared/clock.ts";
import type { Storage } from "../storage/types.ts";
import { type FileService, messageBatchLimits } from "../batch/files/file_service.ts";
import { type ModelCheck, resolveScan, validateInput } from "../batch/input/validation.ts";
import type { ValidationLimits } from "../batch/model/input_scan.ts";
import { type BatchParams, parseBatchParams } from "../batch/model/batch_params.ts";
import { BatchError } from "../batch/model/errors.ts";
import { newBatchId } from "../batch/model/ids.ts";
import { fileBlobKey } from "../batch/model/storage_keys.ts";
import { type BatchErrorEntry, type BatchObject, type BatchRecord, emptyUsage } from "../batch/model/objects.ts";

/**
 * Builds the record of a batch `owner` asks to create with `body`.
 *
 * @throws {BatchError} `invalid_request` naming the parameter at fault
 */
export async function newBatchRecord(
  context: { files: FileService; clock: Clock },
  endpoints: readonly string[],
  owner: string,
  body: unknown,
): Promise<BatchRecord> {
  const params: BatchParams = parseBatchParams(body, endpoints);
  let input;
  try {
    input = await context.files.get(owner, params.inputFileId);
  } catch (error) {
    if (error instanceof BatchError && error.code === "not_found") {
      throw new BatchError("invalid_request", `No such File object: ${params.inputFileId}`, { param: "input_file_id" });
    }
    throw error;
  }
  if (input.file.purpose !== "batch") {
    throw new BatchError(
      "invalid_request",
      `The input file ${params.inputFileId} has purpose '${input.file.purpose}', not 'batch'.`,
      { param: "input_file_id" },
    );
  }
  const createdAt = Math.floor(context.clock.now() / 1000);
  const batch: BatchObject = {
    id: newBatchId(context.clock.now()),
    object: "batch",
    endpoint: params.endpoint,
    model: null,
    input_file_id: params.inputFileId,
    completion_window: params.completionWindow,
    status: "validating",
    output_file_id: null,
    error_file_id: null,
    metadata: params.metadata,
    errors: null,
    created_at: createdAt,
    in_progress_at: null,
    expires_at: createdAt + params.windowSeconds,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    request_counts: { total: 0, completed: 0, failed: 0 },
    usage: emptyUsage(),
    priority: params.priority,
    max_concurrency: params.maxConcurrency,
    paused_at: null,
  };
  return {
    batch,
    owner,
    input_digest: { sha256: input.sha256!, bytes: input.file.bytes, marks: input.marks! },
    input_lines: 0,
    output_expires_after_seconds: params.outputExpiresAfterSeconds,
    planned_output_file_id: null,
    planned_error_file_id: null,
  };
}

/** What checking a batch's input found: its shape, or the errors that fail the batch. */
export type InputCheck =
  | { ok: true; lines: number; requests: number; model: string | null }
  | { ok: false; errors: BatchErrorEntry[] };

/**
 * Checks the input of a batch: with the scan made while it was uploaded when
 * its file record has one, else by reading it whole. A file deleted after the
 * batch was created is still its input: its bytes stay while the batch has
 * not ended, and are read as the batch recorded them.
 */
export async function checkInput(
  context: { files: FileService; storage: Storage; validationLimits: ValidationLimits; accepts?: ModelCheck },
  record: BatchRecord,
): Promise<InputCheck> {
  const { files, storage } = context;
  const validationLimits = record.message_batch ? messageBatchLimits(context.validationLimits) : context.validationLimits;
  const batch = record.batch;
  let fileRecord = null;
  try {
    fileRecord = await files.get(record.owner, batch.input_file_id);
  } catch (error) {
    if (!(error instanceof BatchError && error.code === "not_found")) throw error;
  }
  let result = fileRecord?.scan && resolveScan(fileRecord.scan, batch.endpoint, validationLimits, context.accepts);
  if (!result) {
    const key = fileBlobKey(batch.input_file_id);
    if (!(await storage.blobs.stat(key))) {
      return {
        ok: false,
        errors: [{ code: "invalid_request", message: "The input file no longer exists.", param: "input_file_id", line: null }],
      };
    }
    const validated = await validateInput(await storage.blobs.get(key), batch.endpoint, validationLimits, context.accepts);
    const expected = record.input_digest.sha256;
    if (validated.sha256 !== expected) {
      return {
        ok: false,
        errors: [{
          code: "input_file_corrupted",
          message: `The input file's SHA-256 is ${validated.sha256}, not ${expected} as uploaded: it was changed on disk.`,
          param: "input_file_id",
          line: null,
        }],
      };
    }
    result = validated;
  }
  if (result.errors.length) {
    const errors = [...result.errors];
    if (result.unlistedErrors) {
      errors.push({
        code: "too_many_errors",
        message: `${result.unlistedErrors} more error(s) were found and not listed.`,
        param: null,
        line: null,
      });
    }
    return { ok: false, errors };
  }
  return { ok: true, lines: result.lines, requests: result.requests, model: result.model };
}
