/**
 * Benchmark 6 — status under load: latency of `GET /v1/batches/{id}` while a
 * 50,000-line batch runs at full speed against the mock target.
 * Bar: p99 under 25 ms.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApiClient } from "../src/client/api_client.ts";
import { percentile, report, startBenchServer, writeJsonl } from "./_lib.ts";

const LINES = 50_000;
const dir = await mkdtemp(join(tmpdir(), "bench-status-"));
const input = join(dir, "in.jsonl");
await writeJsonl(input, LINES, 300);
const server = await startBenchServer(["--upstream", "mock", "--data", join(dir, "data")]);
const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
const file = await api.uploadFile(input, "batch");
const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
const latencies: number[] = [];
let status = "validating";
let during = 0;
while (status !== "completed") {
  const started = performance.now();
  const response = await fetch(`${server.baseURL}/batches/${batch.id}`);
  const body = await response.json();
  latencies.push(performance.now() - started);
  status = body.status;
  if (status === "in_progress") during++;
}
await server.stop();
await rm(dir, { recursive: true, force: true });
const p99 = percentile(latencies, 99);
report("status_latency", {
  lines: LINES,
  requests: latencies.length,
  while_in_progress: during,
  p50_ms: Number(percentile(latencies, 50).toFixed(2)),
  p99_ms: Number(p99.toFixed(2)),
  max_ms: Number(Math.max(...latencies).toFixed(2)),
  bar: "p99 < 25 ms",
  pass: p99 < 25,
});
