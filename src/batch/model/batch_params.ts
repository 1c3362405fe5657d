/**
 * Checking the parameters of `POST /v1/batches`.
 *
 * @module
 */
import { BatchError } from "./errors.ts";
import { isFileId } from "./ids.ts";

/**
 * The endpoints a batch may target unless configured otherwise: OpenAI's, and
 * as batchspool's extension Anthropic's Messages API (`/v1/messages`), which
 * the target sends as it is or translated to chat completions.
 */
export const DEFAULT_ENDPOINTS: readonly string[] = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
  "/v1/moderations",
  "/v1/messages",
];

/** Most requests in a batch of Anthropic's Message Batches API (Anthropic's limit). */
export const MAX_MESSAGE_BATCH_REQUESTS = 100_000;
/** Largest body of a create of a message batch (Anthropic's limit). */
export const MAX_MESSAGE_BATCH_BYTES = 256 * 1024 * 1024;

/** The parameters of a new batch, checked. */
export interface BatchParams {
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  windowSeconds: number;
  metadata: Record<string, string> | null;
  outputExpiresAfterSeconds: number | null;
}

const WINDOW = /^([1-9]\d{0,8})([smh])$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/**
 * Seconds in a completion window: `"24h"`, or as batchspool's extension any
 * `<integer><s|m|h>` of at least one second (short windows make expiry testable).
 * Null when the text is not a window.
 *
 * @example
 * ```ts
 * parseCompletionWindow("24h"); // 86400
 * parseCompletionWindow("90s"); // 90
 * ```
 */
export function parseCompletionWindow(text: unknown): number | null {
  if (typeof text !== "string") return null;
  const match = WINDOW.exec(text);
  return match ? Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS] : null;
}

const invalid = (message: string, param: string) => new BatchError("invalid_request", message, { param });

/**
 * Checks a create-batch request body against the allowed endpoints.
 *
 * @throws {BatchError} `invalid_request` naming the parameter at fault.
 */
export function parseBatchParams(body: unknown, endpoints: readonly string[]): BatchParams {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw invalid("The request body must be a JSON object.", "body");
  }
  const b = body as Record<string, unknown>;
  for (const field of ["input_file_id", "endpoint", "completion_window"]) {
    if (b[field] === undefined || b[field] === null) throw invalid(`Missing required parameter: '${field}'.`, field);
  }
  if (typeof b.input_file_id !== "string" || !isFileId(b.input_file_id)) {
    throw invalid(`Invalid 'input_file_id': ${JSON.stringify(b.input_file_id)} is not a file id.`, "input_file_id");
  }
  if (typeof b.endpoint !== "string" || !endpoints.includes(b.endpoint)) {
    throw invalid(
      `Invalid value for 'endpoint': ${JSON.stringify(b.endpoint)}. Supported: ${endpoints.join(", ")}.`,
      "endpoint",
    );
  }
  const windowSeconds = parseCompletionWindow(b.completion_window);
  if (windowSeconds === null) {
    throw invalid(
      `Invalid value for 'completion_window': ${JSON.stringify(b.completion_window)}. ` +
        `Use "24h" (or, as a batchspool extension, a duration such as "90s", "30m" or "2h").`,
      "completion_window",
    );
  }
  return {
    inputFileId: b.input_file_id,
    endpoint: b.endpoint,
    completionWindow: b.completion_window as string,
    windowSeconds,
    metadata: parseMetadata(b.metadata),
    outputExpiresAfterSeconds: parseOutputExpiry(b.output_expires_after),
  };
}

function parseMetadata(metadata: unknown): Record<string, string> | null {
  if (metadata === undefined || metadata === null) return null;
  if (typeof metadata !== "object" || Array.isArray(metadata)) {
    throw invalid("'metadata' must be an object of string values.", "metadata");
  }
  const entries = Object.entries(metadata);
  if (entries.length > 16) throw invalid("'metadata' may have at most 16 keys.", "metadata");
  for (const [key, value] of entries) {
    if (key.length > 64) throw invalid(`'metadata' key ${JSON.stringify(key.slice(0, 20))}… is longer than 64 characters.`, "metadata");
    if (typeof value !== "string") throw invalid(`'metadata.${key}' must be a string.`, "metadata");
    if (value.length > 512) throw invalid(`'metadata.${key}' is longer than 512 characters.`, "metadata");
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

function parseOutputExpiry(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const v = value as { anchor?: unknown; seconds?: unknown };
  if (typeof value !== "object" || v.anchor !== "created_at") {
    throw invalid("'output_expires_after.anchor' must be \"created_at\".", "output_expires_after.anchor");
  }
  if (typeof v.seconds !== "number" || !Number.isInteger(v.seconds) || v.seconds < 3600 || v.seconds > 2_592_000) {
    throw invalid(
      "'output_expires_after.seconds' must be an integer between 3600 and 2592000.",
      "output_expires_after.seconds",
    );
  }
  return v.seconds;
}
