/**
 * What the engine's parts share: its ledger, storage, services and settings.
 * Made once by `createBatchEngine`.
 *
 * @module
 */
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import type { Storage } from "../storage/types.ts";
import type { FileService } from "../batch/files/file_service.ts";
import type { ValidationLimits } from "../batch/model/input_scan.ts";
import type { WorkLedger } from "./ledger/ledger.ts";
import type { RunContext } from "./lines/line_runner.ts";
import type { WebhookOutboxOptions } from "./types.ts";

/** The engine's shared state. */
export interface EngineContext {
  readonly ledger: WorkLedger;
  readonly storage: Storage;
  readonly files: FileService;
  readonly clock: Clock;
  readonly logger: Logger;
  /** What running lines needs (target, dispatcher, retries, stop signals). */
  readonly run: RunContext;
  readonly validationLimits: ValidationLimits;
  /** Whether the target has somewhere to send a model's requests (absent: everywhere). */
  readonly accepts: ((model: string) => boolean) | undefined;
  /** How long requests in flight may finish after a cancel. */
  readonly cancelGraceMs: number;
  /** Who gets webhook events (none: no event is recorded). */
  readonly webhooks: WebhookOutboxOptions | undefined;
}

/** Now, in whole seconds (the API's timestamps). */
export function nowSeconds(context: Pick<EngineContext, "clock">): number {
  return Math.floor(context.clock.now() / 1000);
}
