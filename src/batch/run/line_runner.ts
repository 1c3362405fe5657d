/**
 * Running a batch's lines: stream the input, send each unfinished line through
 * the dispatcher with retries, and append each result to the output or error
 * log (group-committed). Memory holds only the lines in flight.
 *
 * @module
 */
import { setMaxListeners } from "node:events";
import { verifiedStream } from "../../integrity/digest_marks.ts";
import type { Storage } from "../../storage/types.ts";
import type { ActiveBatch } from "./active_batch.ts";
import type { Dispatcher, Lease } from "./dispatcher.ts";
import { createEventLoopShare } from "./event_loop_share.ts";
import { isBlankLine, readLines } from "../input/line_splitter.ts";
import type { Logger } from "../../shared/logger.ts";
import { type Clock, sleep } from "../../shared/clock.ts";
import type { LogKind } from "./batch_progress.ts";
import { type EngineObserver, NO_OBSERVER } from "./engine_observer.ts";
import { rawMemberValue } from "../input/raw_json.ts";
import { EXPIRED_MESSAGE, failureRecord, responseRecord } from "./result_records.ts";
import { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF, RETRYABLE_STATUSES } from "./backoff.ts";
import { fileBlobKey } from "../model/storage_keys.ts";
import { type Target, TargetError, type TargetResponse } from "../../targets/types.ts";
import { estimateRequestTokens, totalTokensOf } from "../model/usage.ts";
import type { RequestLine } from "../input/validation.ts";

/** What the line runner needs from the engine. */
export interface RunContext {
  storage: Storage;
  target: Target;
  dispatcher: Dispatcher;
  maxRetries: number;
  backoff: BackoffPolicy;
  /** Aborted when the engine shuts down: no new line is dispatched. */
  stopping: AbortSignal;
  /** Aborted when requests in flight must be abandoned (end of the shutdown grace). */
  abandon: AbortSignal;
  logger: Logger;
  /** Where retry delays are timed. */
  clock: Clock;
  /** Told of answers and retries. */
  observer: EngineObserver;
}

/** An engine's run context: its parts, with the retry policy and observer its options name (or the defaults). */
export function runContextOf(
  options: { maxRetries?: number; backoff?: BackoffPolicy; observer?: EngineObserver },
  parts: Omit<RunContext, "maxRetries" | "backoff" | "observer">,
): RunContext {
  return { ...parts, maxRetries: options.maxRetries ?? 5, backoff: options.backoff ?? DEFAULT_BACKOFF, observer: options.observer ?? NO_OBSERVER };
}

/** Most lines of one batch in flight or waiting to retry, as a multiple of the concurrency. */
const WINDOW_FACTOR = 2;
/**
 * Most results of one batch waiting for their group commit. They do not hold
 * up dispatching (an fsync takes far longer than a fast target's answer), but
 * past this many the loop waits, so memory stays bounded.
 */
const RESULTS_AWAITING_COMMIT = 2048;
/**
 * Longest stretch the dispatch loop may keep the event loop from other work
 * (status requests, uploads). Against a target that answers at once everything
 * is promise continuations, which would otherwise starve I/O. A status request
 * takes a few of these stretches, so they are short (BENCHMARKS.md, benchmark 6).
 */
const SLICE_MS = 1;
/** Lines dispatched between two looks at the clock. */
const LINES_PER_CLOCK_CHECK = 32;

/** An input line to run: its number, its text, and the request it holds. */
export interface LineToRun {
  line: number;
  text: string;
  request: RequestLine;
}

/** Streams the input's unfinished request lines (number, text, parsed), a chunk's worth at a time. */
async function* unfinishedLines(
  storage: Storage,
  active: ActiveBatch,
): AsyncGenerator<LineToRun[]> {
  const progress = active.progress!;
  // Every read checks the bytes against the upload's digest marks before any line of them is used.
  const input = verifiedStream(
    await storage.blobs.get(fileBlobKey(active.record.batch.input_file_id)),
    active.record.input_digest,
  );
  for await (const group of readLines(input)) {
    const lines: LineToRun[] = [];
    for (const { line, text } of group) {
      if (text === null || progress.isDone(line) || isBlankLine(text)) continue;
      lines.push({ line, text, request: JSON.parse(text) as RequestLine });
    }
    if (lines.length) yield lines;
  }
}

/** The error file's `error.code` for each way a request got no response. */
const NO_RESPONSE_CODES = {
  timeout: "request_timeout",
  connection_error: "connection_error",
  response_too_large: "response_too_large",
} as const;

/**
 * Dispatches every unfinished line of `active` (or the given lines: a
 * cluster's slice) until all are done, the batch is told to stop (cancel,
 * expiry) or the engine closes. Resolves when no request of the batch is in
 * flight any more.
 */
export async function dispatchLines(
  ctx: RunContext,
  active: ActiveBatch,
  lines: AsyncIterable<LineToRun[]> = unfinishedLines(ctx.storage, active),
): Promise<void> {
  const batchId = active.record.batch.id;
  const results = active.results!;
  const stopSignal = AbortSignal.any([active.stopDispatch.signal, ctx.stopping]);
  // One combined signal for every request of this run (not one per request: AbortSignal.any is costly).
  // Each request in flight listens to it, so lift Node's listener warning threshold.
  const requestSignal = AbortSignal.any([active.abortRequests.signal, ctx.abandon]);
  setMaxListeners(0, requestSignal);
  const window = new Set<Promise<void>>();
  const maxWindow = ctx.dispatcher.concurrency * WINDOW_FACTOR;
  let failure: unknown;
  const settle = (line: number, task: Promise<void>) => {
    active.inFlight.delete(line);
    window.delete(task);
  };
  const eventLoop = createEventLoopShare(SLICE_MS);
  let sinceCheck = 0;
  try {
    dispatch: for await (const group of lines) {
      for (const { line, text, request } of group) {
        if (++sinceCheck === LINES_PER_CLOCK_CHECK) {
          sinceCheck = 0;
          await eventLoop.share();
        }
        while (window.size >= maxWindow) await Promise.race(window);
        if (results.pending >= RESULTS_AWAITING_COMMIT) await results.below(RESULTS_AWAITING_COMMIT / 2);
        if (stopSignal.aborted || failure) break dispatch;
        // The body goes upstream exactly as written in the line (see raw_json.ts).
        const bodyText = rawMemberValue(text, "body") ?? JSON.stringify(request.body);
        let lease: Lease;
        try {
          lease = await ctx.dispatcher.acquire(batchId, estimateRequestTokens(bodyText, request.body), stopSignal);
        } catch (error) {
          // Only the stop signal makes a wait for a slot fail.
          if (stopSignal.aborted) break dispatch;
          throw error;
        }
        if (failure) {
          // A line that failed the run did so while this one waited for its slot.
          lease.release();
          break dispatch;
        }
        active.inFlight.add(line);
        const task: Promise<void> = runLine(ctx, active, { line, request, bodyText }, lease, stopSignal, requestSignal)
          .then(
            () => settle(line, task),
            (error) => {
              failure ??= error;
              settle(line, task);
            },
          );
        window.add(task);
      }
    }
  } catch (error) {
    // The input could not be read on (or failed its check): finish what is in flight first.
    failure ??= error;
  } finally {
    // Even when the loop fails, no request of this run may outlive it.
    await Promise.all(window);
  }
  await results.below(1);
  if (failure) throw failure;
}

type Outcome =
  | { kind: "response"; response: TargetResponse }
  | { kind: "no_response"; error: TargetError };

/** Sends one line with retries and records its result. Leaves the line undone when abandoned. */
async function runLine(
  ctx: RunContext,
  active: ActiveBatch,
  { line, request, bodyText }: { line: number; request: RequestLine; bodyText: string },
  firstLease: Lease,
  stopSignal: AbortSignal,
  requestSignal: AbortSignal,
): Promise<void> {
  const batchId = active.record.batch.id;
  let lease: Lease | null = firstLease;
  let outcome: Outcome;
  for (let attempt = 0;; attempt++) {
    const sentAt = ctx.clock.monotonic();
    try {
      const response = await ctx.target.send({
        url: request.url,
        bodyText,
        signal: requestSignal,
      });
      outcome = { kind: "response", response };
      lease.release(totalTokensOf(response.body.usage));
    } catch (error) {
      lease.release();
      // A target that cannot send anything as configured fails the batch (once), not each line.
      if (!(error instanceof TargetError) || error.code === "misconfigured") throw error;
      outcome = { kind: "no_response", error };
    }
    lease = null;
    if (outcome.kind === "no_response" && outcome.error.code === "aborted") return;
    const status = outcome.kind === "response" ? outcome.response.status : 0;
    const answer = outcome.kind === "response" ? String(status) : outcome.error.code;
    ctx.observer.targetAnswered?.(answer, (ctx.clock.monotonic() - sentAt) / 1000);
    const retryable = outcome.kind === "no_response"
      ? outcome.error.code === "timeout" || outcome.error.code === "connection_error"
      : RETRYABLE_STATUSES.has(status);
    if (outcome.kind === "response" && status < 300) ctx.dispatcher.noteSuccess();
    if (!retryable || attempt >= ctx.maxRetries) break;
    // Stopping: a line waiting for a retry is left undone rather than recorded as failed.
    if (stopSignal.aborted) return;
    ctx.observer.retried?.(answer);
    const asked = outcome.kind === "response" ? outcome.response.retryAfterMs : null;
    const delay = asked ?? backoffDelay(attempt, ctx.backoff);
    if (status === 429) ctx.dispatcher.backOff(delay);
    if (!(await sleep(ctx.clock, delay, stopSignal))) return;
    try {
      lease = await ctx.dispatcher.acquire(batchId, estimateRequestTokens(bodyText, request.body), stopSignal);
    } catch (error) {
      if (stopSignal.aborted) return;
      throw error;
    }
  }
  recordOutcome(active, line, request.custom_id, outcome);
}

/** Queues the result of a line for its log. */
function recordOutcome(active: ActiveBatch, line: number, customId: string, outcome: Outcome): void {
  let kind: LogKind;
  let record: string;
  let usage: unknown;
  if (outcome.kind === "no_response") {
    kind = "errors";
    const code = NO_RESPONSE_CODES[outcome.error.code as keyof typeof NO_RESPONSE_CODES] ?? "connection_error";
    record = failureRecord(line, customId, { code, message: outcome.error.message });
  } else {
    const { response } = outcome;
    if (response.status >= 200 && response.status < 300 && !response.json) {
      kind = "errors";
      record = failureRecord(line, customId, {
        code: "invalid_response",
        message: `The target answered ${response.status} without a JSON object body.`,
      });
    } else {
      kind = response.status >= 200 && response.status < 300 ? "output" : "errors";
      usage = response.body.usage;
      record = responseRecord(line, customId, {
        status_code: response.status,
        request_id: response.requestId,
        body: response.body,
      }, response.bodyJson);
    }
  }
  active.results!.add(kind, { line, record, usage });
}

/** Writes every unfinished line to the error log as `batch_expired`. */
export async function expireRemaining(ctx: RunContext, active: ActiveBatch): Promise<void> {
  const results = active.results!;
  for await (const group of unfinishedLines(ctx.storage, active)) {
    for (const { line, request } of group) {
      results.add("errors", {
        line,
        record: failureRecord(line, request.custom_id, { code: "batch_expired", message: EXPIRED_MESSAGE }),
      });
    }
    await results.below(RESULTS_AWAITING_COMMIT);
  }
  await results.below(1);
}
