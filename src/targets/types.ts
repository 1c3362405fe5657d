/**
 * The one small interface every target implements: send one request, get one
 * response (or a {@link TargetError} when no response came).
 *
 * @module
 */

/** A request taken from one input line. */
export interface TargetRequest {
  /** The line's `url`, e.g. `/v1/chat/completions`. */
  url: string;
  /** The line's `body`, already serialised. */
  bodyText: string;
  /** Aborts the request (cancel, expiry, shutdown or timeout). */
  signal: AbortSignal;
  /** The body's `model`, when it names one (targets that route by model read it here). */
  model?: string;
}

/** What came back. */
export interface TargetResponse {
  /** The HTTP status. */
  status: number;
  /** The parsed JSON body (an object), or a wrapper around a non-JSON body. */
  body: Record<string, unknown>;
  /** The target's request id header, when it sent one. */
  requestId: string | null;
  /** A delay the target asked for (Retry-After), in ms. */
  retryAfterMs: number | null;
  /** The body's JSON text as received, when it is a JSON object (spliced into result records as is). */
  bodyJson?: string;
  /** Whether the body was JSON; a 2xx without JSON is treated as an invalid response. */
  json: boolean;
}

/**
 * Why no response came: no answer in time, no connection, aborted by the
 * engine, an answer larger than the target accepts, or a target that cannot
 * send anything as configured (a header its client refuses, say). Only the
 * first two are retried.
 */
export type TargetErrorCode = "timeout" | "connection_error" | "aborted" | "response_too_large" | "misconfigured";

/** A request that got no response. */
export class TargetError extends Error {
  /** Why no response came. */
  readonly code: TargetErrorCode;
  /** @param code why no response came */
  constructor(code: TargetErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TargetError";
    this.code = code;
  }
}

/** An upstream's limits, which the engine keeps for the requests a target sends it. */
export interface UpstreamLimits {
  /** Names the upstream (in logs and state), unique within its target. */
  id: string;
  /** Most of its requests in flight (the engine's concurrency when absent or larger). */
  concurrency?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** False: its limit stays at `concurrency` whatever it answers (default: adapted to its answers). */
  adaptive?: boolean;
}

/** Where a batch's requests go. */
export interface Target {
  /** A short description for logs, e.g. `http://127.0.0.1:8000/v1` or `mock`. */
  readonly description: string;
  /** Sends one request. @throws {TargetError} when no response came. */
  send(request: TargetRequest): Promise<TargetResponse>;
  /**
   * Whether it has somewhere to send requests for `model` (absent: every
   * model). A batch naming a model it refuses fails validation (`model_not_found`).
   */
  accepts?(model: string): boolean;
  /** The upstream that requests for `model` go to, with its limits (absent or null: one upstream for all). */
  upstreamOf?(model: string | undefined): UpstreamLimits | null;
  /** Each upstream's replicas and their state (for operators), by the ids of {@link upstreamOf}. */
  describeUpstreams?(): { limits: UpstreamLimits; replicas: ReplicaState[] }[];
}

/** A replica's state, as operators see it. */
export interface ReplicaState {
  url: string;
  /** `closed`: in use; `open`: taken out until `retryInMs`; `half-open`: a probe may go. */
  breaker: "closed" | "open" | "half-open";
  inFlight: number;
  failuresInARow: number;
  retryInMs: number | null;
}
