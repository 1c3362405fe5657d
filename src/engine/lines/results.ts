/**
 * Where the line runner puts each line's result: a writer that records
 * results in groups (a ledger's: the local one into logs, the PostgreSQL one
 * into its results table, fenced by the claim), and what every writer tells
 * the engine's observer once a group is recorded.
 *
 * @module
 */
import type { EngineObserver } from "./engine_observer.ts";

/** Which result file a result belongs to. */
export type ResultKind = "output" | "errors";

/** One result to write. */
export interface PendingResult {
  line: number;
  record: string;
  usage?: unknown;
}

/** A writer of results. */
export interface ResultWriter {
  /** Queues a result; it is written with the next group (dropped, unfinished, after a failure). */
  add(kind: ResultKind, result: PendingResult): void;
  /** Results queued or being written. */
  readonly pending: number;
  /**
   * Resolves once fewer than `limit` results are pending (0: once everything
   * queued is durable and counted). Rejects with the error of a failed write;
   * the results of a failed group stay unfinished.
   */
  below(limit: number): Promise<void>;
}

/** Tells the observer of a group of results now recorded: how many lines ended each way, and their tokens. */
export function reportRecorded(observer: EngineObserver, group: readonly { kind: ResultKind; result: PendingResult }[]): void {
  let completed = 0;
  for (const { kind } of group) if (kind === "output") completed++;
  if (completed) observer.linesFinished?.("completed", completed);
  if (group.length > completed) observer.linesFinished?.("failed", group.length - completed);
  if (observer.tokensUsed) for (const { result } of group) reportTokens(observer, result.usage);
}

/** Tells the observer the tokens of a result's usage (Chat Completions' or the Responses API's names). */
function reportTokens(observer: EngineObserver, usage: unknown): void {
  if (typeof usage !== "object" || usage === null) return;
  const { prompt_tokens, completion_tokens, input_tokens, output_tokens } = usage as Record<string, unknown>;
  const input = typeof prompt_tokens === "number" ? prompt_tokens : typeof input_tokens === "number" ? input_tokens : 0;
  const output = typeof completion_tokens === "number" ? completion_tokens : typeof output_tokens === "number" ? output_tokens : 0;
  if (input || output) observer.tokensUsed!(input, output);
}
