/**
 * Runs a batch's steps until it ends, the engine closes, or its storage is
 * gone. A step that throws is judged by `classifyStepFailure`: storage that
 * can heal is tried again with capped backoff (logged when the batch pauses
 * and when it resumes), a conflict re-reads the document's version, and
 * anything else fails the batch with an `errors.data` entry saying why.
 *
 * @module
 */
import { sleep } from "../../shared/clock.ts";
import { type ActiveBatch, attachProgress } from "../run/active_batch.ts";
import { backoffDelay } from "../run/backoff.ts";
import type { EngineContext } from "./context.ts";
import { advance, failWithoutResults } from "./lifecycle.ts";
import { absorbLogTails } from "./recovery.ts";
import { classifyStepFailure } from "./step_failures.ts";

/** Conflicts on the batch document in a row after which it is treated as corrupted. */
const MAX_CONFLICTS_IN_A_ROW = 5;

/** Supervises a batch's steps; resolves when it ended or was left (engine closed, storage gone). */
export async function superviseBatch(context: EngineContext, batch: ActiveBatch): Promise<void> {
  const { logger, closing, stepRetry } = context;
  const id = batch.record.batch.id;
  let pausedFor: string | null = null;
  let retries = 0;
  let conflicts = 0;
  let needsResync = false;
  for (;;) {
    try {
      if (needsResync) await resync(context, batch);
      needsResync = false;
      await advance(context, batch);
      if (pausedFor !== null && !closing.aborted) logger.info(`batch ${id}: resumed`);
      return;
    } catch (error) {
      if (closing.aborted) return;
      const failure = classifyStepFailure(error);
      if (failure.kind !== "conflict") conflicts = 0;
      switch (failure.kind) {
        case "stop":
          logger.error(`batch ${id}: stopped, its storage is gone: ${failure.message}`);
          return;
        case "conflict":
          if (++conflicts <= MAX_CONFLICTS_IN_A_ROW) {
            batch.versionUnknown = true;
            continue;
          }
          batch.failure ??= { code: "storage_corrupted", message: `Its document keeps changing: ${failure.message}`, param: null, line: null };
          continue;
        case "transient":
          if (pausedFor !== failure.message) {
            logger.error(
              `batch ${id}: paused, storage failed: ${failure.message}; trying again with backoff (at most ${stepRetry.maxMs / 1000} s apart)`,
            );
            pausedFor = failure.message;
          }
          needsResync = true;
          if (!(await sleep(context.clock, backoffDelay(retries++, stepRetry), closing))) return;
          continue;
        case "fatal":
          if (batch.failure) {
            // Failing it with its results failed too: fail it without them, or else leave it for an operator.
            logger.error(`batch ${id}: its results could not be kept as files: ${failure.message}`);
            await failWithoutResults(context, batch, batch.failure).catch((again) =>
              logger.error(`batch ${id}: could not be marked failed (${(again as Error).message}); it is left as it is`)
            );
            return;
          }
          logger.error(`batch ${id}: failed: ${failure.message}`);
          batch.failure = { code: failure.code, message: failure.message, param: failure.param, line: null };
          needsResync = true;
          continue;
      }
    }
  }
}

/**
 * After a failure, brings the batch's progress in line with its logs: a failed
 * append may still have left whole records in a log, and their lines must not
 * be sent again.
 */
async function resync(context: EngineContext, batch: ActiveBatch): Promise<void> {
  if (!batch.progress) return;
  await absorbLogTails(context, batch.record.batch.id, batch.progress);
  attachProgress(batch, batch.progress, context.storage, context.clock, context.run.observer);
}
