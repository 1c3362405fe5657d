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
  /** Higher goes first (batchspool's extension; default 0). */
  priority: number;
  /** Most of its requests in flight at once (batchspool's extension; null: no limit of its own). */
  maxConcurrency: number | null;
}

/** The range of a batch's `priority`. */
export const PRIORITY_RANGE = { min: -1_000_000, max: 1_000_000 } as const;
/** The largest `max_concurrency` a batch may ask for. */
export const MAX_BATCH_CONCURRENCY = 100_000;

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
  const metadata = parseMetadata(b.metadata);
  return {
    inputFileId: b.input_file_id,
    endpoint: b.endpoint,
    completionWindow: b.completion_window as string,
    windowSeconds,
    metadata,
    outputExpiresAfterSeconds: parseOutputExpiry(b.output_expires_after),
    priority: scheduleInteger(b, metadata, "priority", PRIORITY_RANGE.min, PRIORITY_RANGE.max) ?? 0,
    maxConcurrency: scheduleInteger(b, metadata, "max_concurrency", 1, MAX_BATCH_CONCURRENCY) ?? null,
  };
}

/**
 * A scheduling parameter (batchspool's extension), given in the body or, so
 * that the unchanged SDKs can set it, as a metadata value: an integer within
 * [min, max]; both places at once must agree. Undefined when absent.
 */
function scheduleInteger(
  body: Record<string, unknown>,
  metadata: Record<string, string> | null,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const given = body[name];
  const inMetadata = metadata?.[name];
  let value: number | undefined;
  if (given !== undefined && given !== null) {
    if (typeof given !== "number" || !Number.isInteger(given) || given < min || given > max) {
      throw invalid(`'${name}' must be an integer between ${min} and ${max}.`, name);
    }
    value = given;
  }
  if (inMetadata !== undefined) {
    const fromMetadata = /^-?\d{1,7}$/.test(inMetadata.trim()) ? Number(inMetadata.trim()) : NaN;
    if (!(fromMetadata >= min && fromMetadata <= max)) {
      throw invalid(`'metadata.${name}' must be an integer between ${min} and ${max}, got ${JSON.stringify(inMetadata)}.`, "metadata");
    }
    if (value !== undefined && value !== fromMetadata) {
      throw invalid(`'${name}' is ${value} but 'metadata.${name}' is ${fromMetadata}: give one, or the same in both.`, name);
    }
    value = fromMetadata;
  }
  return value;
}

/**
 * The scheduling extensions given as headers (`batchspool-priority`,
 * `batchspool-max-concurrency`), for a create whose body has no room for
 * them (Anthropic's): the body members they stand for.
 *
 * @throws {BatchError} `invalid_request` naming `priority` or `max_concurrency`.
 */
export function scheduleFromHeaders(priority: string | undefined, maxConcurrency: string | undefined): Record<string, number> {
  const body: Record<string, unknown> = {};
  for (const [name, text] of [["priority", priority], ["max_concurrency", maxConcurrency]] as const) {
    if (text !== undefined) body[name] = /^\s*-?\d{1,7}\s*$/.test(text) ? Number(text) : text;
  }
  const priorityValue = scheduleInteger(body, null, "priority", PRIORITY_RANGE.min, PRIORITY_RANGE.max);
  const maxValue = scheduleInteger(body, null, "max_concurrency", 1, MAX_BATCH_CONCURRENCY);
  return {
    ...(priorityValue === undefined ? {} : { priority: priorityValue }),
    ...(maxValue === undefined ? {} : { max_concurrency: maxValue }),
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
