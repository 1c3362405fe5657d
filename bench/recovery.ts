/**
 * Benchmark 5 — recovery: time from process start to `/health` ok with a
 * 50,000-line batch killed (SIGKILL) about half way, with a valid checkpoint
 * and without one (checkpoints deleted: a full scan of the logs).
 * Bar: under 1 s with a checkpoint.
 */
import { readdir, rm } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApiClient } from "../src/client/api_client.ts";
import { median, pollBatch, report, runsArg, startBenchServer, writeJsonl } from "./_lib.ts";

const LINES = 50_000;

async function timeToHealthy(args: string[]): Promise<{ ms: number; stop: () => Promise<void> }> {
  const started = performance.now();
  const { startServer } = await import("../tests/_server.ts");
  const { currentRuntime } = await import("../src/runtime/detect.ts");
  const server = await startServer(args, {}, { fromBuild: currentRuntime() === "node" });
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${server.port}/health`).catch(() => null);
    if (response?.status === 200) break;
    await response?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return { ms: performance.now() - started, stop: () => server.kill() };
}

const dir = await mkdtemp(join(tmpdir(), "bench-recovery-"));
const data = join(dir, "data");
const input = join(dir, "in.jsonl");
await writeJsonl(input, LINES, 300);
const args = ["--upstream", "mock", "--mock-latency", "2", "--concurrency", "8", "--checkpoint-interval", "1", "--data", data];
const server = await startBenchServer(args);
const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
const file = await api.uploadFile(input, "batch");
const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
const atKill = await pollBatch(server.baseURL, batch.id, (b) => b.request_counts.completed >= LINES / 2, 50);
await new Promise((resolve) => setTimeout(resolve, 1200)); // a checkpoint is at most 1 s old
await server.kill();

const runs = runsArg(3);
const withCheckpoint: number[] = [];
const withoutCheckpoint: number[] = [];
for (let i = 0; i < runs; i++) {
  const warm = await timeToHealthy(args);
  withCheckpoint.push(warm.ms);
  await warm.stop();
  for (const name of await readdir(join(data, "docs", "checkpoints"))) {
    await rm(join(data, "docs", "checkpoints", name), { force: true });
  }
  const cold = await timeToHealthy(args);
  withoutCheckpoint.push(cold.ms);
  await cold.stop();
}
await rm(dir, { recursive: true, force: true });
report("recovery", {
  lines: LINES,
  finished_at_kill: atKill.request_counts.completed,
  with_checkpoint_ms: Math.round(median(withCheckpoint)),
  without_checkpoint_ms: Math.round(median(withoutCheckpoint)),
  bar: "< 1000 ms with a checkpoint",
  pass: median(withCheckpoint) < 1000,
  runs: { with: withCheckpoint.map(Math.round), without: withoutCheckpoint.map(Math.round) },
});
