/**
 * A target over several upstreams: each line goes to the first route whose
 * model pattern matches its body's `model` (a route without a pattern takes
 * the rest), and within a route to one of its replicas (`replica_set.ts`).
 * Each route declares its limits, which the engine keeps as that upstream's
 * own (`Target.upstreamOf`).
 *
 * @module
 */
import { type Clock, systemClock } from "../../shared/clock.ts";
import { redactUrl } from "../../shared/redact.ts";
import { type Target, TargetError, type TargetRequest, type TargetResponse, type UpstreamLimits } from "../types.ts";
import { type BreakerOptions, type Replica, ReplicaSet } from "./replica_set.ts";
import { globMatches } from "../../shared/glob.ts";

/** One route: the models it serves and the upstream that serves them. */
export interface UpstreamRoute {
  /** Glob on the request body's `model` (`*` stands for any characters); absent: every model no other route takes. */
  model?: string;
  /** Base URLs including `/v1` (several: replicas of one server). */
  urls: string[];
  /** Sent as `Authorization: Bearer …`. */
  apiKey?: string;
  /** Most requests in flight to this upstream (all its replicas together). */
  concurrency?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** Per-request timeout in ms. */
  timeoutMs?: number;
  /** False: keep `concurrency` whatever the upstream answers (default: adapt it). */
  adaptive?: boolean;
}

/** Options for {@link createRoutedTarget}. */
export interface RoutedTargetOptions {
  /** The routes, first match first. */
  routes: readonly UpstreamRoute[];
  /** Builds the target of one replica. */
  targetOf: (url: string, route: UpstreamRoute) => Target;
  /** Replicas' circuit breakers. */
  breaker?: BreakerOptions;
  /** Times the breakers' cooldowns. */
  clock?: Clock;
}

interface Route {
  spec: UpstreamRoute;
  limits: UpstreamLimits;
  replicas: ReplicaSet;
}

/**
 * A target that routes each request by its model to an upstream, spreads a
 * route's requests over its replicas, and takes failing replicas out. A
 * request no route takes is answered 404 `model_not_found` (as OpenAI answers
 * an unknown model) without being sent.
 *
 * @example
 * ```ts
 * const target = createRoutedTarget({
 *   routes: [
 *     { model: "llama-*", urls: ["http://gpu1:8000/v1", "http://gpu2:8000/v1"], concurrency: 64 },
 *     { urls: ["https://api.openai.com/v1"], apiKey: "sk-…", requestsPerMinute: 500 },
 *   ],
 *   targetOf: (url, route) => createHttpTarget({ baseUrl: url, apiKey: route.apiKey, timeoutMs: route.timeoutMs }),
 * });
 * ```
 */
export function createRoutedTarget(options: RoutedTargetOptions): Target {
  const clock = options.clock ?? systemClock;
  const routes: Route[] = options.routes.map((spec, index) => {
    if (!spec.urls.length) throw new TargetError("misconfigured", `route ${index + 1} (${spec.model ?? "default"}) has no URL`);
    return {
      spec,
      limits: {
        id: spec.model ?? "*",
        concurrency: spec.concurrency,
        requestsPerMinute: spec.requestsPerMinute,
        tokensPerMinute: spec.tokensPerMinute,
        adaptive: spec.adaptive,
      },
      replicas: new ReplicaSet(spec.urls.map((url) => [redactUrl(url), options.targetOf(url, spec)] as const), clock, options.breaker),
    };
  });
  const known = new Map<string | undefined, Route | null>();
  const routeOf = (model: string | undefined): Route | null => {
    let route = known.get(model);
    if (route === undefined) {
      route = routes.find(({ spec }) => spec.model === undefined || (model !== undefined && globMatches(spec.model, model))) ?? null;
      if (known.size < 4096) known.set(model, route);
    }
    return route;
  };
  return {
    description: routes.map(({ spec }) => `${spec.model ?? "*"}=${spec.urls.map(redactUrl).join("|")}`).join(", "),
    accepts: (model) => routeOf(model) !== null,
    upstreamOf: (model) => routeOf(model)?.limits ?? null,
    describeUpstreams: () => routes.map(({ limits, replicas }) => ({ limits, replicas: replicas.states() })),
    async send(request: TargetRequest): Promise<TargetResponse> {
      const route = routeOf(request.model);
      if (!route) return modelNotFound(request.model);
      const tried = new Set<Replica>();
      let replica = route.replicas.pick(tried)!;
      for (;;) {
        route.replicas.started(replica);
        let response: TargetResponse;
        try {
          response = await replica.target.send(request);
        } catch (error) {
          const failed = error instanceof TargetError && (error.code === "connection_error" || error.code === "timeout");
          route.replicas.finished(replica, failed ? false : null);
          // No connection to this replica: another one takes the line now, rather than after a backoff.
          tried.add(replica);
          const next = failed && error.code === "connection_error" && !request.signal.aborted ? route.replicas.pick(tried) : null;
          if (!next) throw error;
          replica = next;
          continue;
        }
        route.replicas.finished(replica, response.status < 500);
        return response;
      }
    },
  };
}

/** The answer to a request for a model no route serves. */
function modelNotFound(model: string | undefined): TargetResponse {
  const message = model === undefined
    ? "The request names no model, and no upstream takes requests without one."
    : `The model ${JSON.stringify(model)} does not exist: no upstream is configured for it.`;
  const body = { error: { message, type: "invalid_request_error", param: "model", code: "model_not_found" } };
  return { status: 404, body, requestId: null, retryAfterMs: null, json: true };
}
