/**
 * Validation of a batch input file: one streaming pass, every error collected
 * (up to a cap) with its 1-based line number.
 *
 * @module
 */
import { createSha256 } from "../integrity/sha256.ts";
import { readLines } from "./line_reader.ts";
import type { BatchErrorEntry } from "./objects.ts";

/** Limits for validation. */
export interface ValidationLimits {
  /** Most requests in one batch. Default 50,000. */
  maxRequests: number;
  /** Most errors reported in `errors.data`; the rest are counted but not listed. Default 1,000. */
  maxErrors: number;
  /** Longest line in bytes. Default 16 MiB. */
  maxLineBytes: number;
}

/** The default validation limits. */
export const DEFAULT_VALIDATION_LIMITS: ValidationLimits = {
  maxRequests: 50_000,
  maxErrors: 1_000,
  maxLineBytes: 16 * 1024 * 1024,
};

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

/**
 * Checks one parsed line against the batch's endpoint. Returns the problems
 * (empty when the line is a valid request).
 */
export function checkRequestLine(value: unknown, endpoint: string, line: number): BatchErrorEntry[] {
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
  if (value.url !== undefined && value.url !== null && value.url !== endpoint) {
    problem(
      "invalid_url",
      `The URL provided for this request does not match the batch endpoint ${endpoint}.`,
      "url",
    );
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
 * Validates an input stream for `endpoint`.
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
): Promise<ValidationResult> {
  const hash = createSha256();
  const hashed = input.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  const errors: BatchErrorEntry[] = [];
  let unlistedErrors = 0;
  const report = (entry: BatchErrorEntry) => {
    if (errors.length < limits.maxErrors) errors.push(entry);
    else unlistedErrors++;
  };
  const seen = new Set<string>();
  let requests = 0;
  let lines = 0;
  let model: string | null = null;

  for await (const group of readLines(hashed, limits.maxLineBytes)) {
    for (const { line, text, problem } of group) {
      lines = line;
      if (problem === "too_long") {
        requests++;
        report({
          code: "invalid_request",
          message: `Line is longer than ${limits.maxLineBytes} bytes.`,
          param: null,
          line,
        });
        continue;
      }
      if (text === null) {
        requests++;
        report({ code: "invalid_json_line", message: "This line is not parseable as valid JSON.", param: null, line });
        continue;
      }
      if (text.trim() === "") continue;
      requests++;
      if (requests === limits.maxRequests + 1) {
        report({
          code: "invalid_request",
          message: `The input file has more than the maximum of ${limits.maxRequests} requests.`,
          param: null,
          line,
        });
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        report({ code: "invalid_json_line", message: "This line is not parseable as valid JSON.", param: null, line });
        continue;
      }
      const problems = checkRequestLine(value, endpoint, line);
      for (const entry of problems) report(entry);
      const request = value as Partial<RequestLine>;
      if (typeof request.custom_id === "string") {
        if (seen.has(request.custom_id)) {
          report({
            code: "duplicate_custom_id",
            message: `The custom_id ${JSON.stringify(request.custom_id)} appears more than once in this batch.`,
            param: "custom_id",
            line,
          });
        }
        seen.add(request.custom_id);
      }
      if (model === null && problems.length === 0 && typeof request.body?.model === "string") {
        model = request.body.model;
      }
    }
  }
  if (requests === 0) {
    report({
      code: "empty_file",
      message: "The input file is empty: it contains no requests.",
      param: null,
      line: null,
    });
  }
  return { requests, lines, model, sha256: hash.hexDigest(), errors, unlistedErrors };
}
