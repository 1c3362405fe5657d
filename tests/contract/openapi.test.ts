/**
 * `GET /openapi.json`: a valid OpenAPI 3.1 document (checked by a validator of
 * the OpenAPI schema) that describes exactly the app's routes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createPrometheusMetrics } from "../../src/http/operator/metrics.ts";
import { makeTestApp } from "../support/app.ts";
import { createApp } from "../../src/http/app.ts";

test("openapi: the document validates against the OpenAPI 3.1 schema and names every route the app serves", async () => {
  const t = await makeTestApp();
  try {
    const response = await t.app.request("/openapi.json");
    assert.equal(response.status, 200);
    const document = await response.json();
    const verdict = await new Validator().validate(document);
    assert.deepEqual(verdict.errors ?? [], [], JSON.stringify(verdict.errors, null, 2));
    assert.equal(verdict.valid, true);
    assert.equal(document.openapi, "3.1.0");
    // The validator does refuse a broken document (a response without its description).
    const broken = structuredClone(document);
    delete broken.paths["/health"].get.responses["200"].description;
    assert.equal((await new Validator().validate(broken)).valid, false);

    // Every route of the app (with metrics, as a cluster's node), in the document, and nothing more.
    const cluster = { nodeId: "n1", describe: () => Promise.resolve({}) };
    const app = createApp({ engine: t.engine, metrics: createPrometheusMetrics(), cluster });
    const shape = (path: string) => path.replace(/:[^/]+|\{[^}]+\}/g, "{}");
    const served = new Set(
      app.routes.filter((r) => r.method !== "ALL" && !r.path.endsWith("*")).map((r) => `${r.method} ${shape(r.path)}`),
    );
    const documented = new Set(
      Object.entries(document.paths as Record<string, Record<string, unknown>>)
        .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${shape(path)}`)),
    );
    assert.ok(served.size >= 13, `${served.size} routes`);
    assert.deepEqual([...served].sort(), [...documented].sort());
  } finally {
    await t.close();
  }
});

test("openapi: /docs is an interactive reference that loads only from this server (works offline)", async () => {
  const t = await makeTestApp();
  try {
    // Mounted under a prefix, as a consumer's app would: every URL the page loads stays under it.
    const { Hono } = await import("hono");
    const parent = new Hono().route("/batch", t.app);
    const page = await parent.request("/batch/docs");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
    const html = await page.text();
    assert.doesNotMatch(html, /(https?:)?\/\/[a-z]/i, "no absolute or CDN URL");
    assert.match(html, /SwaggerUIBundle\(\{[\s\S]*url: 'openapi\.json'/);

    const base = new URL("http://localhost/batch/docs");
    const loaded = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => new URL(m[1]!, base).pathname);
    assert.deepEqual(loaded.sort(), ["/batch/docs/assets/swagger-ui-dist/swagger-ui-bundle.js", "/batch/docs/assets/swagger-ui-dist/swagger-ui.css"]);
    for (const path of loaded) {
      const asset = await parent.request(path);
      assert.equal(asset.status, 200, path);
      const text = await asset.text();
      assert.ok(text.length > 100_000, `${path}: ${text.length} bytes`);
      if (path.endsWith(".js")) {
        assert.match(asset.headers.get("content-type") ?? "", /^text\/javascript/);
        assert.match(text, /SwaggerUIBundle/);
      } else {
        assert.match(asset.headers.get("content-type") ?? "", /^text\/css/);
      }
    }
    // The spec the page asks for resolves against the page's URL, too.
    assert.equal((await parent.request(new URL("openapi.json", base).pathname)).status, 200);
    const unknown = await parent.request("/batch/docs/assets/swagger-ui-dist/package.json");
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, "unknown_url");
  } finally {
    await t.close();
  }
});
