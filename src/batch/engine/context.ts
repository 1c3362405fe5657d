/**
 * What the engine's parts share: its storage, services, settings and the
 * batches that have not ended. Made once by `createBatchEngine`.
 *
 * @module
 */
import type { Clock } from "../../shared/clock.ts";
import type { Logger } from "../../shared/logger.ts";
import type { Storage } from "../../storage/types.ts";
import type { FileService } from "../files/file_service.ts";
import type { ValidationLimits } from "../model/input_scan.ts";
import type { ActiveBatch } from "../run/active_batch.ts";
import type { BackoffPolicy } from "../run/backoff.ts";
import type { RunContext } from "../run/line_runner.ts";
import type { WebhookOutboxOptions } from "./types.ts";

/** The engine's shared state. */
export interface EngineContext {
  readonly storage: Storage;
  readonly files: FileService;
  readonly clock: Clock;
  readonly logger: Logger;
  /** What running a batch's lines needs (target, dispatcher, retries, stop signals). */
  readonly run: RunContext;
  /** Batches that have not ended, by id. */
  readonly active: Map<string, ActiveBatch>;
  /** Aborted when the engine closes. */
  readonly closing: AbortSignal;
  readonly validationLimits: ValidationLimits;
  /** How long requests in flight may finish after a cancel. */
  readonly cancelGraceMs: number;
  /** Delays before a step that failed on storage that can heal is tried again. */
  readonly stepRetry: BackoffPolicy;
  /** Who gets webhook events (none: no event is recorded). */
  readonly webhooks: WebhookOutboxOptions | undefined;
}

/** Now, in whole seconds (the API's timestamps). */
export function nowSeconds(context: EngineContext): number {
  return Math.floor(context.clock.now() / 1000);
}

/** Whether a file is the input of a batch that has not ended. */
export function isInputOfActiveBatch(context: EngineContext, fileId: string): boolean {
  for (const batch of context.active.values()) if (batch.record.batch.input_file_id === fileId) return true;
  return false;
}
