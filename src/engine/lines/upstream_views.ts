/**
 * What `GET /cluster` shows of the upstreams: each one's adaptive limit (from
 * the dispatcher) with its replicas' breakers (from a routing target).
 *
 * @module
 */
import type { Target } from "../../targets/types.ts";
import type { Dispatcher } from "./dispatcher.ts";

/** An upstream as one node sees it: its adaptive limit on requests in flight and, with routes, its replicas. */
export interface UpstreamView {
  /** Its route's model pattern (`*`: the default route), or `default` for a single upstream. */
  upstream: string;
  in_flight: number;
  /** Requests allowed in flight now (adapted to its answers). */
  limit: number;
  max_limit: number;
  replicas: { url: string; breaker: string; in_flight: number; failures_in_a_row: number; retry_in_ms: number | null }[];
}

/** The upstreams a target declares (or the one it is), as this node's dispatcher sees them. */
export function upstreamViews(dispatcher: Dispatcher, target: Target): UpstreamView[] {
  const lanes = new Map(dispatcher.upstreams().map((lane) => [lane.id, lane]));
  const routes = target.describeUpstreams?.() ?? [{ limits: { id: "default" }, replicas: [] }];
  return routes.map(({ limits, replicas }) => {
    const lane = lanes.get(limits.id);
    const max = lane?.maxLimit ?? Math.min(limits.concurrency ?? dispatcher.concurrency, dispatcher.concurrency);
    return {
      upstream: limits.id,
      in_flight: lane?.inFlight ?? 0,
      limit: lane?.limit ?? max,
      max_limit: max,
      replicas: replicas.map((replica) => ({
        url: replica.url,
        breaker: replica.breaker,
        in_flight: replica.inFlight,
        failures_in_a_row: replica.failuresInARow,
        retry_in_ms: replica.retryInMs,
      })),
    };
  });
}
