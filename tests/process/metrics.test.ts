/**
 * `GET /metrics` of a real server, parsed as Prometheus text, moving as a
 * batch runs against a real upstream.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { line } from "../support/engine.ts";
import { eventually, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";
import { startUpstream } from "../support/upstream.ts";

interface Family {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }[];
}

/** Scrapes `/metrics` and parses it with a Prometheus text-format parser. */
async function scrape(origin: string): Promise<Map<string, Family>> {
  const response = await fetch(`${origin}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  // The package ships no types.
  const { default: parse } = await import("parse-prometheus-text-format" as string) as { default: (text: string) => Family[] };
  return new Map(parse(await response.text()).map((family) => [family.name, family]));
}

/** The value of a sample (a histogram's count), 0 when the labels have none yet. */
function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  assert.ok(family, `no metric ${name}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return Number(sample?.value ?? sample?.count ?? 0);
}

test("metrics: counters, gauges and the latency histogram move as a batch runs, in Prometheus text format", async () => {
  const dir = await tempDir();
  const upstream = await startUpstream();
  const server = await startServer(["--upstream", upstream.baseUrl, "--max-retries", "1", "--data", dir]);
  try {
    await server.waitFor(/ready/);
    const origin = `http://127.0.0.1:${server.port}`;
    const before = await scrape(origin);
    for (const name of ["batchspool_lines_finished_total", "batchspool_retries_total", "batchspool_tokens_total",
      "batchspool_batches_ended_total", "batchspool_uploads_total", "batchspool_upstream_requests_total"]) {
      assert.equal(before.get(name)?.type, "COUNTER", name);
    }
    assert.equal(before.get("batchspool_upstream_request_duration_seconds")?.type, "HISTOGRAM");
    assert.equal(valueOf(before, "batchspool_lines_waiting"), 0);
    assert.equal(valueOf(before, "batchspool_requests_in_flight"), 0);
    assert.equal(valueOf(before, "batchspool_batches", { status: "in_progress" }), 0);

    // 6 answered at once, 2 answered on their second attempt, 2 refused by the upstream for good.
    const models = [...Array(6).fill("ok"), "flaky:1", "flaky:1", "status:400", "status:400"];
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const input = await client.files.create({
      file: await toFile(new TextEncoder().encode(models.map((m, i) => line(`m${i}`, m)).join("\n")), "in.jsonl"),
      purpose: "batch",
    });
    const created = await client.batches.create({ input_file_id: input.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await eventually(async () => (await client.batches.retrieve(created.id)).status === "completed");
    await assert.rejects(
      client.files.create({ file: await toFile(new TextEncoder().encode("x"), "x.txt"), purpose: "nonsense" as "batch" }),
    );

    const after = await scrape(origin);
    assert.equal(valueOf(after, "batchspool_lines_finished_total", { outcome: "completed" }), 8);
    assert.equal(valueOf(after, "batchspool_lines_finished_total", { outcome: "failed" }), 2);
    assert.equal(valueOf(after, "batchspool_retries_total", { reason: "500" }), 2);
    assert.equal(valueOf(after, "batchspool_batches_ended_total", { status: "completed" }), 1);
    // The upstream reports 10 prompt and 5 completion tokens per answer; its 400s report none.
    assert.equal(valueOf(after, "batchspool_tokens_total", { direction: "input" }), 80);
    assert.equal(valueOf(after, "batchspool_tokens_total", { direction: "output" }), 40);
    assert.equal(valueOf(after, "batchspool_upstream_requests_total", { outcome: "200" }), 8);
    assert.equal(valueOf(after, "batchspool_upstream_requests_total", { outcome: "500" }), 2);
    assert.equal(valueOf(after, "batchspool_upstream_requests_total", { outcome: "400" }), 2);
    assert.equal(valueOf(after, "batchspool_upstream_request_duration_seconds"), 12, "every answer timed");
    const buckets = after.get("batchspool_upstream_request_duration_seconds")!.metrics[0].buckets!;
    assert.equal(buckets["+Inf"], "12");
    assert.equal(valueOf(after, "batchspool_uploads_total", { outcome: "stored" }), 1);
    assert.equal(valueOf(after, "batchspool_uploads_total", { outcome: "refused" }), 1);
    assert.equal(valueOf(after, "batchspool_lines_waiting"), 0);
    assert.equal(valueOf(after, "batchspool_requests_in_flight"), 0);
    assert.doesNotMatch(await (await fetch(`${origin}/metrics`)).text(), new RegExp(`${created.id}|${input.id}`), "no tenant's ids");
  } finally {
    await server.stop();
    await upstream.close();
    await removeDir(dir);
  }
});
