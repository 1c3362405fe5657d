/**
 * What the engine reports as it works, for metrics: answers from the target,
 * retries, durable results, tokens and ended batches. The engine calls these
 * synchronously on its hot path, so an observer only counts.
 *
 * @module
 */
import type { BatchStatus } from "../../batch/model/objects.ts";

/** Receives the engine's events; every method is optional. */
export interface EngineObserver {
  /** The target answered (`outcome`: the HTTP status) or did not (`outcome`: `timeout`, `connection_error`, …), after `seconds`. */
  targetAnswered?(outcome: string, seconds: number): void;
  /** A line is sent again; `reason` is the status (`429`, `503`) or the failure (`timeout`, `connection_error`). */
  retried?(reason: string): void;
  /** Results were recorded: `completed` ones for the output file, `failed` ones for the error file. */
  linesFinished?(outcome: "completed" | "failed", count: number): void;
  /** Tokens a recorded result's usage reports. */
  tokensUsed?(input: number, output: number): void;
  /** A batch ended with `status`. */
  batchEnded?(status: BatchStatus): void;
}

/** The observer that ignores everything. */
export const NO_OBSERVER: EngineObserver = {};
