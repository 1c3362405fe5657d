/**
 * Benchmark 2 — HTTP upstream efficiency. Against a minimal local upstream (its
 * own process) that answers at once: batchspool's lines per second ÷ a plain
 * fetch loop with the same concurrency hitting the upstream directly (bar ≥ 0.8).
 * With 50 ms of latency at the upstream: throughput ≥ 0.9 × concurrency ÷ latency.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBatchEngine } from "../src/batch/engine.ts";
import { silentLogger } from "../src/batch/logger.ts";
import { createHttpTarget } from "../src/batch/targets/fetch_target.ts";
import { createFsStorage } from "../src/storage/fs.ts";
import { median, report, runsArg, startBenchUpstream } from "./_lib.ts";

const CONCURRENCY = 32;
const body = { model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] };
const lineOf = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body });

async function engineRate(baseUrl: string, lines: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "bench-http-"));
  const storage = await createFsStorage({ dir });
  const engine = createBatchEngine({
    storage,
    target: createHttpTarget({ baseUrl }),
    logger: silentLogger,
    concurrency: CONCURRENCY,
  });
  await engine.start();
  const content = new TextEncoder().encode(Array.from({ length: lines }, (_, i) => lineOf(i)).join("\n"));
  const received = await engine.files.receive({ owner: "default", filename: "in.jsonl", purpose: "batch", content });
  const file = await engine.files.commit(received, { purpose: "batch" });
  const started = performance.now();
  const batch = await engine.createBatch("default", { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  for (;;) {
    const b = await engine.getBatch("default", batch.id);
    if (b.status === "completed") {
      if (b.request_counts.completed !== lines) throw new Error(`only ${b.request_counts.completed} succeeded`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const rate = lines / ((performance.now() - started) / 1000);
  await engine.close();
  await storage.close();
  await rm(dir, { recursive: true, force: true });
  return rate;
}

async function plainFetchRate(baseUrl: string, lines: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  const text = JSON.stringify(body);
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < lines) {
      next++;
      const response = await fetch(`${baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: text,
      });
      await response.json();
    }
  }));
  return lines / ((performance.now() - started) / 1000);
}

const runs = runsArg(3);
const fast = await startBenchUpstream(0);
const engine: number[] = [];
const plain: number[] = [];
for (let i = 0; i < runs; i++) {
  plain.push(await plainFetchRate(fast.baseUrl, 10_000));
  engine.push(await engineRate(fast.baseUrl, 10_000));
}
await fast.stop();
const slow = await startBenchUpstream(50);
const latency: number[] = [];
for (let i = 0; i < runs; i++) latency.push(await engineRate(slow.baseUrl, 2_000));
await slow.stop();
const ratio = median(engine) / median(plain);
const ideal = CONCURRENCY / 0.05;
report("http_upstream", {
  concurrency: CONCURRENCY,
  engine_lines_per_s: Math.round(median(engine)),
  plain_fetch_per_s: Math.round(median(plain)),
  ratio: Number(ratio.toFixed(3)),
  bar: ">= 0.8",
  pass: ratio >= 0.8,
  latency50_lines_per_s: Math.round(median(latency)),
  latency50_ideal: ideal,
  latency50_fraction: Number((median(latency) / ideal).toFixed(3)),
  latency50_pass: median(latency) >= 0.9 * ideal,
  runs: { engine: engine.map(Math.round), plain: plain.map(Math.round), latency50: latency.map(Math.round) },
});
