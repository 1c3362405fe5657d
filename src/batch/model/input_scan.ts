/**
 * What validating a batch input finds while the file uploads, kept with the
 * file's record (see `input/validation.ts`), and the limits it applies.
 *
 * @module
 */
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

/** What a scan found, before the batch's endpoint is known. Serialisable (kept with the file). */
export interface InputScan {
  /** The limits it was made with; a scan made with other limits is not used. */
  limits: ValidationLimits;
  requests: number;
  lines: number;
  model: string | null;
  /** Errors that do not depend on the endpoint, in line order, at most `maxErrors`. */
  errors: BatchErrorEntry[];
  unlistedErrors: number;
  /** For each `url` named: how many lines name it and the first `maxErrors` of them. */
  urls: Record<string, { count: number; lines: number[] }>;
  /** False when more distinct urls were named than are tracked: validate the file again. */
  urlsComplete: boolean;
  /** For each body `model` named, as for urls (absent in scans made before models were noted). */
  models?: Record<string, { count: number; lines: number[] }>;
  /** False when more distinct models were named than are tracked. */
  modelsComplete?: boolean;
}
