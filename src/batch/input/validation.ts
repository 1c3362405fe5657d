/**
 * Validation of a batch input file: one streaming pass, every error collected
 * (up to a cap) with its 1-based line number.
 *
 * The pass is split in two so that it can run while the file is uploaded: an
 * {@link InputScanner} checks everything that does not depend on the batch
 * (JSON, required fields, method, duplicate ids, streaming, counts) and notes
 * which lines name which `url`; {@link resolveScan} then checks those urls
 * against the endpoint given at batch creation.
 *
 * @module
 */
import { createSha256 } from "../../integrity/sha256.ts";
import { CustomIdSet } from "./custom_id_set.ts";
import { type InputLine, isBlankLine, LineSplitter } from "./line_splitter.ts";
import { BLANK_LINE, requestLineReader } from "./request_line_reader.ts";
import type { BatchErrorEntry } from "../model/objects.ts";
import { DEFAULT_VALIDATION_LIMITS, type InputScan, type ValidationLimits } from "../model/input_scan.ts";

export { DEFAULT_VALIDATION_LIMITS, type InputScan, type ValidationLimits };

/** What validation found. */
export interface ValidationResult {
  /** Requests (non-blank lines). */
  requests: number;
  /** Physical lines, blank ones included. */
  lines: number;
  /** The first `model` named in a request body, if any. */
  model: string | null;
  /** SHA-256 of the bytes read. */
  sha256: string;
  errors: BatchErrorEntry[];
  /** Errors found beyond `maxErrors`. */
  unlistedErrors: number;
}

/** A parsed, valid request line. */
export interface RequestLine {
  custom_id: string;
  method: "POST";
  url: string;
  body: Record<string, unknown>;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const invalidUrl = (endpoint: string, line: number): BatchErrorEntry => ({
  code: "invalid_url",
  message: `The URL provided for this request does not match the batch endpoint ${endpoint}.`,
  param: "url",
  line,
});

const modelNotFound = (model: string, line: number): BatchErrorEntry => ({
  code: "model_not_found",
  message: `The model ${JSON.stringify(model)} does not exist: no upstream is configured for it.`,
  param: "body.model",
  line,
});

/** Distinct urls (and models) a scan tracks; a file naming more is validated again at batch creation. */
const MAX_TRACKED_URLS = 16;

/** Which lines name which value, for up to {@link MAX_TRACKED_URLS} values. */
type Tally = Map<string, { count: number; lines: number[] }>;

/** Notes that `line` names `value`; false when the tally is full. */
function tally(into: Tally, value: string, line: number, maxLines: number): boolean {
  let entry = into.get(value);
  if (!entry) {
    if (into.size >= MAX_TRACKED_URLS) return false;
    entry = { count: 0, lines: [] };
    into.set(value, entry);
  }
  entry.count++;
  if (entry.lines.length < maxLines) entry.lines.push(line);
  return true;
}

/** Where a model has somewhere to go (absent: every model has). */
export type ModelCheck = ((model: string) => boolean) | undefined;

/** Checks one parsed line, except its `url` against the endpoint. Returns its problems. */
export function checkRequestLine(value: unknown, line: number): BatchErrorEntry[] {
  const problems: BatchErrorEntry[] = [];
  const problem = (code: string, message: string, param: string | null) =>
    problems.push({ code, message, param, line });
  if (!isObject(value)) {
    problem("invalid_request", "Each line must be a JSON object.", null);
    return problems;
  }
  for (const field of ["custom_id", "method", "url", "body"]) {
    if (value[field] === undefined || value[field] === null) {
      problem("missing_required_parameter", `Missing required parameter: '${field}'.`, field);
    }
  }
  if (value.custom_id !== undefined && value.custom_id !== null) {
    if (typeof value.custom_id !== "string" || value.custom_id.length === 0) {
      problem("invalid_request", "'custom_id' must be a non-empty string.", "custom_id");
    } else if (value.custom_id.length > 512) {
      problem("invalid_request", "'custom_id' may be at most 512 characters.", "custom_id");
    }
  }
  if (value.method !== undefined && value.method !== null && value.method !== "POST") {
    problem("invalid_request", `Invalid value for 'method': only POST is supported.`, "method");
  }
  if (value.url !== undefined && value.url !== null && typeof value.url !== "string") {
    problem("invalid_url", "'url' must be a string.", "url");
  }
  if (value.body !== undefined && value.body !== null) {
    if (!isObject(value.body)) {
      problem("invalid_request", "'body' must be a JSON object.", "body");
    } else if (value.body.stream === true) {
      problem("streaming_unsupported", "Streaming is not supported in batch requests.", "body.stream");
    }
  }
  return problems;
}

/**
 * Scans input incrementally: feed it chunks as they arrive, then `finish()`.
 * Given the endpoint, it reports every `url` that differs; without it (at
 * upload time) it notes which lines name which url, for {@link resolveScan}.
 *
 * @example
 * ```ts
 * const scanner = new InputScanner(DEFAULT_VALIDATION_LIMITS);
 * for await (const chunk of upload) scanner.push(chunk);
 * const scan = scanner.finish();
 * ```
 */
export class InputScanner {
  readonly limits: ValidationLimits;
  readonly endpoint: string | undefined;
  readonly #accepts: ModelCheck;
  #splitter: LineSplitter;
  #errors: BatchErrorEntry[] = [];
  #unlistedErrors = 0;
  #seen = new CustomIdSet();
  #requests = 0;
  #lines = 0;
  #model: string | null = null;
  #urls: Tally = new Map();
  #urlsComplete = true;
  #models: Tally = new Map();
  #modelsComplete = true;

  /** With `endpoint` (and `accepts`), lines are checked against them; without, noted for {@link resolveScan}. */
  constructor(limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS, endpoint?: string, accepts?: ModelCheck) {
    this.limits = limits;
    this.endpoint = endpoint;
    this.#accepts = accepts;
    // Lines are read from their bytes where they can be: only the fields checked here are built.
    this.#splitter = new LineSplitter(limits.maxLineBytes, requestLineReader);
  }

  /** Scans the lines this chunk completes. */
  push(chunk: Uint8Array): void {
    this.#scan(this.#splitter.push(chunk));
  }

  /** Scans the last line and returns the result. */
  finish(): InputScan {
    this.#scan(this.#splitter.end());
    if (this.#requests === 0) {
      this.#report({ code: "empty_file", message: "The input file is empty: it contains no requests.", param: null, line: null });
    }
    return {
      limits: this.limits,
      requests: this.#requests,
      lines: this.#lines,
      model: this.#model,
      errors: this.#errors,
      unlistedErrors: this.#unlistedErrors,
      urls: Object.fromEntries(this.#urls),
      urlsComplete: this.#urlsComplete,
      models: Object.fromEntries(this.#models),
      modelsComplete: this.#modelsComplete,
    };
  }

  #report(entry: BatchErrorEntry) {
    if (this.#errors.length < this.limits.maxErrors) this.#errors.push(entry);
    else this.#unlistedErrors++;
  }

  #scan(group: readonly InputLine[]) {
    const limits = this.limits;
    for (const { line, text, problem, value: read } of group) {
      this.#lines = line;
      if (problem === "too_long") {
        this.#requests++;
        this.#report({ code: "invalid_request", message: `Line is longer than ${limits.maxLineBytes} bytes.`, param: null, line });
        continue;
      }
      if (text === null) {
        this.#requests++;
        this.#report({ code: "invalid_json_line", message: "This line is not parseable as valid JSON.", param: null, line });
        continue;
      }
      if (read === BLANK_LINE || (read === undefined && isBlankLine(text))) continue;
      this.#requests++;
      if (this.#requests === limits.maxRequests + 1) {
        this.#report({
          code: "invalid_request",
          message: `The input file has more than the maximum of ${limits.maxRequests} requests.`,
          param: null,
          line,
        });
      }
      let value = read;
      if (value === undefined) {
        try {
          value = JSON.parse(text);
        } catch {
          this.#report({ code: "invalid_json_line", message: "This line is not parseable as valid JSON.", param: null, line });
          continue;
        }
      }
      const problems = checkRequestLine(value, line);
      // A line that is not an object (`null`, `7`, `[]`…) has one problem and no fields to look at.
      if (!isObject(value)) {
        for (const entry of problems) this.#report(entry);
        continue;
      }
      const request = value as Partial<RequestLine>;
      if (typeof request.url === "string") {
        if (this.endpoint === undefined) this.#urlsComplete &&= tally(this.#urls, request.url, line, limits.maxErrors);
        else if (request.url !== this.endpoint) problems.push(invalidUrl(this.endpoint, line));
      }
      const model = isObject(request.body) && typeof request.body.model === "string" ? request.body.model : undefined;
      if (model !== undefined) {
        if (this.endpoint === undefined) this.#modelsComplete &&= tally(this.#models, model, line, limits.maxErrors);
        else if (this.#accepts && !this.#accepts(model)) problems.push(modelNotFound(model, line));
      }
      for (const entry of problems) this.#report(entry);
      // Past the request limit the file has failed: its ids are no longer kept (nor their cost paid).
      const counted = this.#requests <= limits.maxRequests;
      if (counted && typeof request.custom_id === "string" && !this.#seen.add(request.custom_id)) {
        this.#report({
          code: "duplicate_custom_id",
          message: `The custom_id ${JSON.stringify(request.custom_id)} appears more than once in this batch.`,
          param: "custom_id",
          line,
        });
      }
      if (this.#model === null && problems.length === 0 && isObject(request.body) && typeof request.body.model === "string") {
        this.#model = request.body.model;
      }
    }
  }

}

/**
 * Completes a scan for a batch's endpoint: every line whose `url` differs is an
 * `invalid_url` error, and with `accepts`, every line naming a model nowhere
 * to go a `model_not_found` one, merged with the scan's errors in line order
 * and capped. Null when the scan cannot answer (too many distinct urls or
 * models, other limits).
 */
export function resolveScan(
  scan: InputScan,
  endpoint: string,
  limits: ValidationLimits,
  accepts?: ModelCheck,
): Omit<ValidationResult, "sha256"> | null {
  if (!scan.urlsComplete || JSON.stringify(scan.limits) !== JSON.stringify(limits)) return null;
  if (accepts && (!scan.models || !scan.modelsComplete)) return null;
  const found: BatchErrorEntry[] = [];
  let unlisted = scan.unlistedErrors;
  for (const [url, { count, lines }] of Object.entries(scan.urls)) {
    if (url === endpoint) continue;
    for (const line of lines) found.push(invalidUrl(endpoint, line));
    unlisted += count - lines.length;
  }
  for (const [model, { count, lines }] of accepts ? Object.entries(scan.models!) : []) {
    if (accepts!(model)) continue;
    for (const line of lines) found.push(modelNotFound(model, line));
    unlisted += count - lines.length;
  }
  const order = (entry: BatchErrorEntry) => entry.line ?? Number.MAX_SAFE_INTEGER;
  const merged = [...scan.errors, ...found].sort((a, b) => order(a) - order(b));
  unlisted += Math.max(0, merged.length - limits.maxErrors);
  return {
    requests: scan.requests,
    lines: scan.lines,
    model: scan.model,
    errors: merged.slice(0, limits.maxErrors),
    unlistedErrors: unlisted,
  };
}

/**
 * Validates an input stream for `endpoint` in one pass.
 *
 * @example
 * ```ts
 * const result = await validateInput(await storage.blobs.get("files/file-…"), "/v1/chat/completions");
 * if (result.errors.length) console.log(result.errors);
 * ```
 */
export async function validateInput(
  input: ReadableStream<Uint8Array>,
  endpoint: string,
  limits: ValidationLimits = DEFAULT_VALIDATION_LIMITS,
  accepts?: ModelCheck,
): Promise<ValidationResult> {
  const hash = createSha256();
  const scanner = new InputScanner(limits, endpoint, accepts);
  for await (const chunk of input) {
    hash.update(chunk);
    scanner.push(chunk);
  }
  const { requests, lines, model, errors, unlistedErrors } = scanner.finish();
  return { requests, lines, model, errors, unlistedErrors, sha256: hash.hexDigest() };
}
