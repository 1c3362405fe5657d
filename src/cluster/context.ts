/**
 * What a cluster node's parts share.
 *
 * @module
 */
import type { WebhookOutboxOptions } from "../batch/engine/types.ts";
import type { FileService } from "../batch/files/file_service.ts";
import type { ValidationLimits } from "../batch/model/input_scan.ts";
import type { RunContext } from "../batch/run/line_runner.ts";
import type { Clock } from "../shared/clock.ts";
import type { Logger } from "../shared/logger.ts";
import type { Storage } from "../storage/types.ts";
import type { ClusterStore } from "./cluster_store.ts";
import type { SliceLimits } from "./slicing.ts";

/** A node's shared state. */
export interface ClusterContext {
  readonly store: ClusterStore;
  readonly storage: Storage;
  readonly files: FileService;
  readonly clock: Clock;
  readonly logger: Logger;
  /** What running lines needs (target, dispatcher, retries, stop signals). */
  readonly run: RunContext;
  readonly validationLimits: ValidationLimits;
  readonly sliceLimits: SliceLimits;
  /** How long requests in flight may finish after a cancel. */
  readonly cancelGraceMs: number;
  readonly webhooks: WebhookOutboxOptions | undefined;
}

/** Now, in whole seconds (the API's timestamps). */
export function nowSeconds(context: Pick<ClusterContext, "clock">): number {
  return Math.floor(context.clock.now() / 1000);
}
