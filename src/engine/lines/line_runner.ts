/**
 * Running a slice's lines: send each line through the dispatcher with
 * retries, and hand each result to the slice's result writer. Memory holds
 * only the lines in flight.
 *
 * @module
 */
import { setMaxListeners } from "node:events";
import type { Dispatcher, Lease, QueueSpec, UpstreamAnswer } from "./dispatcher.ts";
import { createEventLoopShare } from "./event_loop_share.ts";
import { groupByPrefix } from "./prefix_groups.ts";
import type { Logger } from "../../shared/logger.ts";
import { type Clock, sleep } from "../../shared/clock.ts";
import { type EngineObserver, NO_OBSERVER } from "./engine_observer.ts";
import { rawMemberValue } from "../../batch/input/raw_json.ts";
import { failureRecord, responseRecord } from "./result_records.ts";
import type { ResultKind, ResultWriter } from "./results.ts";
import { backoffDelay, type BackoffPolicy, DEFAULT_BACKOFF, RETRYABLE_STATUSES } from "./backoff.ts";
import { type Target, TargetError, type TargetResponse } from "../../targets/types.ts";
import { estimateRequestTokens, totalTokensOf } from "../../batch/model/usage.ts";
import type { RequestLine } from "../../batch/input/validation.ts";

/** What the line runner needs from the engine. */
export interface RunContext {
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
  /** Send lines that share leading messages together (`prefix_groups.ts`). */
  prefixGrouping: boolean;
}

/** An engine's run context: its parts, with the retry policy and observer its options name (or the defaults). */
export function runContextOf(
  options: { maxRetries?: number; backoff?: BackoffPolicy; observer?: EngineObserver; prefixGrouping?: boolean },
  parts: Omit<RunContext, "maxRetries" | "backoff" | "observer" | "prefixGrouping">,
): RunContext {
  return {
    ...parts,
    maxRetries: options.maxRetries ?? 5,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    observer: options.observer ?? NO_OBSERVER,
    prefixGrouping: options.prefixGrouping ?? true,
  };
}

/** A slice being run: where its results go, and the signals that stop it. */
export interface RunningSlice {
  /** Its batch's queue at the dispatcher (its id is the batch's). */
  queue: QueueSpec;
  /** Where its results go. */
  results: ResultWriter;
  /** Aborted when dispatching must stop: wakes waits for slots and backoffs. */
  stopDispatch: AbortController;
  /** Aborted when requests in flight must be abandoned. */
  abortRequests: AbortController;
  /** Input lines whose requests are in flight now. */
  inFlight: Set<number>;
  /** Set when it stops because its batch was paused: it is handed back, not done. */
  paused: boolean;
}

/** A slice's state before it runs. */
export function runningSlice(queue: QueueSpec, results: ResultWriter): RunningSlice {
  return { queue, results, stopDispatch: new AbortController(), abortRequests: new AbortController(), inFlight: new Set(), paused: false };
}

/** Most lines of one batch in flight or waiting to retry, as a multiple of the concurrency. */
const WINDOW_FACTOR = 2;
/**
 * Most results of one batch waiting for their group commit. They do not hold
 * up dispatching (an fsync takes far longer than a fast target's answer), but
 * past this many the loop waits, so memory stays bounded.
 */
export const RESULTS_AWAITING_COMMIT = 2048;
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

/** The error file's `error.code` for each way a request got no response. */
const NO_RESPONSE_CODES = {
  timeout: "request_timeout",
  connection_error: "connection_error",
  response_too_large: "response_too_large",
} as const;

/**
 * Dispatches every line of `lines` until all are done, the slice is told to
 * stop (cancel, expiry, a lost claim) or the engine closes. Resolves when no
 * request of the slice is in flight any more and its results are recorded.
 */
export async function dispatchLines(
  ctx: RunContext,
  active: RunningSlice,
  lines: AsyncIterable<LineToRun[]>,
): Promise<void> {
  const queue = active.queue;
  const results = active.results;
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
    const ordered = ctx.prefixGrouping ? groupByPrefix(lines, 2 * ctx.dispatcher.concurrency) : lines;
    dispatch: for await (const group of ordered) {
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
          lease = await ctx.dispatcher.acquire(queue, estimateRequestTokens(bodyText, request.body), stopSignal, modelOf(request));
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
  active: RunningSlice,
  { line, request, bodyText }: { line: number; request: RequestLine; bodyText: string },
  firstLease: Lease,
  stopSignal: AbortSignal,
  requestSignal: AbortSignal,
): Promise<void> {
  let lease: Lease | null = firstLease;
  let outcome: Outcome;
  for (let attempt = 0;; attempt++) {
    const sentAt = ctx.clock.monotonic();
    try {
      const response = await ctx.target.send({ url: request.url, bodyText, signal: requestSignal, model: modelOf(request) });
      outcome = { kind: "response", response };
    } catch (error) {
      // A target that cannot send anything as configured fails the batch (once), not each line.
      if (!(error instanceof TargetError) || error.code === "misconfigured") {
        lease.release();
        throw error;
      }
      outcome = { kind: "no_response", error };
    }
    const latencyMs = ctx.clock.monotonic() - sentAt;
    lease.release(outcome.kind === "response" ? totalTokensOf(outcome.response.body.usage) : undefined, upstreamAnswer(outcome, latencyMs));
    lease = null;
    if (outcome.kind === "no_response" && outcome.error.code === "aborted") return;
    const status = outcome.kind === "response" ? outcome.response.status : 0;
    const answer = outcome.kind === "response" ? String(status) : outcome.error.code;
    ctx.observer.targetAnswered?.(answer, latencyMs / 1000);
    const retryable = outcome.kind === "no_response"
      ? outcome.error.code === "timeout" || outcome.error.code === "connection_error"
      : RETRYABLE_STATUSES.has(status);
    if (!retryable || attempt >= ctx.maxRetries) break;
    // Stopping: a line waiting for a retry is left undone rather than recorded as failed.
    if (stopSignal.aborted) return;
    ctx.observer.retried?.(answer);
    const asked = outcome.kind === "response" ? outcome.response.retryAfterMs : null;
    if (!(await sleep(ctx.clock, asked ?? backoffDelay(attempt, ctx.backoff), stopSignal))) return;
    try {
      lease = await ctx.dispatcher.acquire(active.queue, estimateRequestTokens(bodyText, request.body), stopSignal, modelOf(request));
    } catch (error) {
      if (stopSignal.aborted) return;
      throw error;
    }
  }
  recordOutcome(active, line, request.custom_id, outcome);
}

/**
 * What an outcome tells its upstream's adaptive limit: 429 and 503 (and a
 * timeout) say it has too much to do; an abort says nothing.
 */
function upstreamAnswer(outcome: Outcome, latencyMs: number): UpstreamAnswer | undefined {
  if (outcome.kind === "no_response") {
    if (outcome.error.code === "aborted") return undefined;
    return { kind: outcome.error.code === "timeout" ? "overloaded" : "other", latencyMs };
  }
  const { status, retryAfterMs } = outcome.response;
  if (status === 429 || status === 503) return { kind: "overloaded", latencyMs, retryAfterMs };
  return { kind: status < 300 ? "success" : "other", latencyMs };
}

/** The model a line's body names (for budgets and routes by model). */
function modelOf(request: RequestLine): string | undefined {
  const model = (request.body as { model?: unknown }).model;
  return typeof model === "string" ? model : undefined;
}

/** Queues the result of a line for its file. */
function recordOutcome(active: RunningSlice, line: number, customId: string, outcome: Outcome): void {
  let kind: ResultKind;
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
  active.results.add(kind, { line, record, usage });
}
