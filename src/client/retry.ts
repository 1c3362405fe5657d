/**
 * Resubmitting what did not succeed: a new batch from the lines of a finished
 * batch that have no result in its output file (those in its error file, and
 * those that never ran, as in a cancelled batch), with the same endpoint,
 * completion window and metadata, plus `retry_of`. It speaks only the public
 * API, so it works against any OpenAI-compatible batch server; files stream
 * through a temporary file, a line at a time (the ids that succeeded, and
 * the causes of those that failed, are kept).
 *
 * @module
 */
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BatchObject } from "../batch/model/objects.ts";
import { type ClientConfig, ClientError, createApiClient, EXIT } from "./api_client.ts";

/** What {@link retryBatch} did. */
export interface RetryResult {
  /** The new batch; null when no line of the batch failed. */
  batch: BatchObject | null;
  /** Lines in the new batch. */
  lines: number;
  /**
   * How many of them come from each cause: an error record's `error.code`,
   * `http_<status>` for an answer that was not 2xx, or `never_ran` for a line
   * in neither file.
   */
  causes: Record<string, number>;
}

/** The metadata key that names the batch a retry came from. */
export const RETRY_OF = "retry_of";
/** OpenAI's limit on metadata pairs. */
const MAX_METADATA_PAIRS = 16;
const FINISHED = new Set(["completed", "failed", "expired", "cancelled"]);

/**
 * Creates a batch of the lines of `batchId` without a successful result:
 * those in its error file (non-2xx answers, requests that got none, lines
 * expired unrun) and those in neither file (never ran: a cancelled batch's).
 *
 * @example
 * ```ts
 * const { batch, lines } = await retryBatch({ baseUrl: "http://127.0.0.1:8787/v1", apiKey: undefined }, "batch_…");
 * ```
 * @throws {ClientError} when the batch has not finished, or failed validation (no line ran: fix the input instead)
 */
export async function retryBatch(config: ClientConfig, batchId: string): Promise<RetryResult> {
  const api = createApiClient(config);
  const original = await api.retrieveBatch(batchId);
  if (!FINISHED.has(original.status)) {
    throw new ClientError(`batch ${batchId} is ${original.status}; retry it once it has ended`, EXIT.rejected);
  }
  const validationErrors = original.errors?.data ?? [];
  if (original.status === "failed" && validationErrors.length > 0 && original.request_counts.total === 0) {
    const first = validationErrors[0];
    throw new ClientError(
      `batch ${batchId} failed validation (${validationErrors.length} error(s); first: ` +
        `${first.line ? `line ${first.line}: ` : ""}${first.code}: ${first.message}); ` +
        `lines that failed validation cannot be retried: fix the input file and submit it again`,
      EXIT.rejected,
    );
  }
  const succeeded = new Set<string>();
  if (original.output_file_id) {
    for await (const line of textLines(await api.fileContent(original.output_file_id))) {
      const customId = customIdOf(line);
      if (customId !== undefined) succeeded.add(customId);
    }
  }
  const causeOf = new Map<string, string>();
  if (original.error_file_id) {
    for await (const line of textLines(await api.fileContent(original.error_file_id))) {
      const record = parsed(line) as { custom_id?: unknown; error?: { code?: unknown } | null; response?: { status_code?: unknown } | null };
      if (typeof record?.custom_id !== "string") continue;
      const code = record.error?.code ?? (record.response?.status_code !== undefined ? `http_${record.response.status_code}` : "failed");
      causeOf.set(record.custom_id, String(code));
    }
  }
  if (succeeded.size === original.request_counts.total && original.request_counts.total > 0) return { batch: null, lines: 0, causes: {} };

  const metadata: Record<string, string> = { ...(original.metadata ?? {}) };
  if (!(RETRY_OF in metadata) && Object.keys(metadata).length >= MAX_METADATA_PAIRS) {
    throw new ClientError(
      `batch ${batchId} has ${MAX_METADATA_PAIRS} metadata pairs, the most allowed: no room for ${RETRY_OF}`,
      EXIT.rejected,
    );
  }
  metadata[RETRY_OF] = batchId;

  const dir = await mkdtemp(join(tmpdir(), "batchspool-retry-"));
  try {
    const path = join(dir, `${batchId}_retry.jsonl`);
    const causes = await writeUnsucceededLines(await api.fileContent(original.input_file_id), succeeded, causeOf, path);
    const lines = Object.values(causes).reduce((sum, n) => sum + n, 0);
    if (lines === 0) return { batch: null, lines: 0, causes: {} };
    const file = await api.uploadFile(path, "batch");
    const batch = await api.createBatch({
      input_file_id: file.id,
      endpoint: original.endpoint,
      completion_window: original.completion_window,
      metadata,
    });
    return { batch, lines, causes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Copies the input lines whose `custom_id` did not succeed to `path`, as
 * written; returns how many came from each cause.
 */
async function writeUnsucceededLines(
  input: ReadableStream<Uint8Array>,
  succeeded: Set<string>,
  causeOf: Map<string, string>,
  path: string,
): Promise<Record<string, number>> {
  const encoder = new TextEncoder();
  const handle = await open(path, "w");
  const causes: Record<string, number> = {};
  try {
    for await (const line of textLines(input)) {
      const customId = customIdOf(line);
      if (customId === undefined || succeeded.has(customId)) continue;
      await handle.write(encoder.encode(`${line}\n`));
      const cause = causeOf.get(customId) ?? "never_ran";
      causes[cause] = (causes[cause] ?? 0) + 1;
    }
  } finally {
    await handle.close();
  }
  return causes;
}

/** A JSONL line's value (undefined when it is not JSON). */
function parsed(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

/** The `custom_id` of a JSONL line, if it has one. */
function customIdOf(line: string): string | undefined {
  const id = (parsed(line) as { custom_id?: unknown } | null | undefined)?.custom_id;
  return typeof id === "string" ? id : undefined;
}

/** The non-blank lines of a UTF-8 byte stream, without their `\r\n` or `\n` (the decoder drops a leading BOM), one at a time. */
async function* textLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const bytes of stream) {
    rest += decoder.decode(bytes, { stream: true });
    let start = 0;
    for (let end = rest.indexOf("\n"); end !== -1; start = end + 1, end = rest.indexOf("\n", start)) {
      const line = rest.slice(start, rest[end - 1] === "\r" ? end - 1 : end);
      if (line.trim()) yield line;
    }
    rest = rest.slice(start);
  }
  rest += decoder.decode();
  const last = rest.endsWith("\r") ? rest.slice(0, -1) : rest;
  if (last.trim()) yield last;
}
