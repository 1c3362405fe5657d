/**
 * Prometheus metrics of one batchspool process, on `prom-client` (a
 * maintained library that runs on Deno, Bun and Node, rather than the text
 * format written by hand). Counters and the latency histogram are fed by the
 * engine's observer; the gauges are read from the engine when scraped. No
 * metric carries a tenant's ids, files or metadata.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { BatchEngine, EngineObserver } from "../../engine/engine.ts";
import type { BatchStatus } from "../../batch/model/objects.ts";

/** The metrics, their engine observer, and the registry `/metrics` reads. */
export interface PrometheusMetrics {
  /** Pass to `createBatchEngine({ observer })`. */
  readonly observer: EngineObserver;
  /** Every metric, for `/metrics` or your own registry (`Registry.merge`). */
  readonly registry: Registry;
  /** The engine whose current state the gauges show (set once it exists). */
  attach(engine: BatchEngine): void;
  /** Counts an upload by what became of it. */
  uploadFinished(outcome: "stored" | "refused"): void;
}

const UNFINISHED: readonly BatchStatus[] = ["validating", "in_progress", "finalizing", "cancelling"];

/**
 * Creates the metrics, named `batchspool_…`.
 *
 * @example
 * ```ts
 * const metrics = createPrometheusMetrics();
 * const engine = createBatchEngine({ storage, target, observer: metrics.observer });
 * metrics.attach(engine);
 * const app = createApp({ engine, metrics }); // GET /metrics
 * ```
 */
export function createPrometheusMetrics(): PrometheusMetrics {
  const registry = new Registry();
  const registers = [registry];
  let engine: BatchEngine | null = null;

  const batchesEnded = new Counter({
    name: "batchspool_batches_ended_total",
    help: "Batches that ended, by final status.",
    labelNames: ["status"],
    registers,
  });
  new Gauge({
    name: "batchspool_batches",
    help: "Batches that have not ended, by status.",
    labelNames: ["status"],
    registers,
    async collect() {
      const batches = (await engine?.freshStats())?.batches ?? {};
      for (const status of UNFINISHED) this.set({ status }, batches[status] ?? 0);
    },
  });
  const linesFinished = new Counter({
    name: "batchspool_lines_finished_total",
    help: "Lines whose result is durable: completed (output file) or failed (error file).",
    labelNames: ["outcome"],
    registers,
  });
  const retries = new Counter({
    name: "batchspool_retries_total",
    help: "Requests sent again, by the reason: the target's status (429, 503) or the failure (timeout, connection_error).",
    labelNames: ["reason"],
    registers,
  });
  const latency = new Histogram({
    name: "batchspool_upstream_request_duration_seconds",
    help: "Time from sending a request to the target to its answer (or its failure).",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers,
  });
  const answers = new Counter({
    name: "batchspool_upstream_requests_total",
    help: "Requests to the target, by outcome: the HTTP status, or the failure (timeout, connection_error, …).",
    labelNames: ["outcome"],
    registers,
  });
  const tokens = new Counter({
    name: "batchspool_tokens_total",
    help: "Tokens reported by durable results' usage: input (prompt) and output (completion).",
    labelNames: ["direction"],
    registers,
  });
  new Gauge({
    name: "batchspool_lines_waiting",
    help: "Lines of running batches not yet sent, or waiting to be sent again.",
    registers,
    async collect() {
      this.set((await engine?.freshStats())?.linesWaiting ?? 0);
    },
  });
  new Gauge({
    name: "batchspool_requests_in_flight",
    help: "Requests toward the target not yet answered.",
    registers,
    collect() {
      this.set(engine?.stats().requestsInFlight ?? 0);
    },
  });
  new Gauge({
    name: "batchspool_upstream_limit",
    help: "Requests each upstream may have in flight now: its adaptive limit, lowered on 429/503 and rising latency.",
    labelNames: ["upstream"],
    registers,
    collect() {
      for (const view of engine?.stats().upstreams ?? []) this.set({ upstream: view.upstream }, view.limit);
    },
  });
  new Gauge({
    name: "batchspool_upstream_requests_in_flight",
    help: "Requests in flight to each upstream.",
    labelNames: ["upstream"],
    registers,
    collect() {
      for (const view of engine?.stats().upstreams ?? []) this.set({ upstream: view.upstream }, view.in_flight);
    },
  });
  new Gauge({
    name: "batchspool_upstream_replica_out",
    help: "1 while a replica is taken out by its circuit breaker (open or waiting for its probe), else 0.",
    labelNames: ["upstream", "replica"],
    registers,
    collect() {
      for (const view of engine?.stats().upstreams ?? []) {
        for (const replica of view.replicas) this.set({ upstream: view.upstream, replica: replica.url }, replica.breaker === "closed" ? 0 : 1);
      }
    },
  });
  const uploads = new Counter({
    name: "batchspool_uploads_total",
    help: "File uploads, by outcome: stored, or refused (invalid, too large, cut short).",
    labelNames: ["outcome"],
    registers,
  });

  return {
    registry,
    observer: {
      targetAnswered(outcome, seconds) {
        latency.observe(seconds);
        answers.inc({ outcome });
      },
      retried: (reason) => retries.inc({ reason }),
      linesFinished: (outcome, count) => linesFinished.inc({ outcome }, count),
      tokensUsed(input, output) {
        if (input) tokens.inc({ direction: "input" }, input);
        if (output) tokens.inc({ direction: "output" }, output);
      },
      batchEnded: (status) => batchesEnded.inc({ status }),
    },
    attach(attached) {
      engine = attached;
    },
    uploadFinished: (outcome) => uploads.inc({ outcome }),
  };
}
