/**
 * The operator's routes: `/metrics` (Prometheus text) and `/cluster` (the
 * nodes, their work, every tenant's batch ids). They take no API key, so they
 * belong on a private listener (`createAdminApp`, `--admin-port`) or, for a
 * server bound to loopback, beside the API.
 *
 * @module
 */
import { type Env, Hono } from "hono";
import type { PrometheusMetrics } from "./metrics.ts";

/** What the operator's routes show. */
export interface OperatorViews {
  /** Served at `GET /metrics`. */
  metrics?: PrometheusMetrics;
  /** Served at `GET /cluster`. */
  cluster?: { describe(): Promise<unknown> };
}

/** Mounts `/metrics` and `/cluster` (each when given) on `app`. */
export function addOperatorRoutes<E extends Env>(app: Hono<E>, views: OperatorViews): void {
  const { metrics, cluster } = views;
  if (cluster) app.get("/cluster", async (c) => c.json(await cluster.describe()));
  if (metrics) {
    app.get("/metrics", async (c) =>
      c.body(await metrics.registry.metrics(), 200, { "content-type": metrics.registry.contentType }));
  }
}

/**
 * An app of the operator's routes alone, with `/health`, for a listener of
 * its own.
 *
 * @example
 * ```ts
 * Deno.serve({ hostname: "127.0.0.1", port: 9090 }, createAdminApp({ metrics, cluster }).fetch);
 * ```
 */
export function createAdminApp(views: OperatorViews & { ready?: () => boolean }): Hono {
  const app = new Hono();
  app.get("/health", (c) => (views.ready?.() ?? true) ? c.json({ status: "ok" }) : c.json({ status: "starting" }, 503));
  addOperatorRoutes(app, views);
  return app;
}
