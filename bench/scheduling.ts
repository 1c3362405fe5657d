/**
 * Benchmark 12 — what scheduling costs. Benchmark 2b's setup (an HTTP
 * upstream of its own process, concurrency 32), the same lines run three
 * ways on one fs engine:
 *
 * - one batch of one key (the dispatcher's fast path, one queue);
 * - 20 batches of one key, all priority 0 (grants rotate between 20 queues);
 * - 20 batches of 4 keys (weights 1 to 4 by `ownerWeights`), priorities 0 and 1,
 *   every fifth with `max_concurrency` (every rule of the dispatcher in play;
 *   the limit is the engine's concurrency, so that it costs its checks without
 *   changing how much can be in flight at the end).
 *
 * Throughput of the last ÷ the second (the same batches without the rules),
 * paired run by run (bar ≥ 0.95), against an upstream that answers at once
 * (the engine's own cost shows) and one that answers in 50 ms (keeping 32 in
 * flight is what counts); ÷ the first is reported beside it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createBatchEngine } from "../src/engine/engine.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { createFsStorage } from "../src/storage/fs/fs_storage.ts";
import { createHttpTarget } from "../src/targets/http_target.ts";
import { median, pairedRatio, report, runsArg, startBenchUpstream } from "./_lib.ts";

const CONCURRENCY = 32;
const BATCHES = 20;
const KEYS = ["key-1", "key-2", "key-3", "key-4"];
const body = { model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] };
const lineOf = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body });

type Mode = "one_batch" | "twenty_batches" | "scheduled";

/** Lines per second of `lines` lines run the way `mode` says, from the first create to the last batch's end. */
async function rate(baseUrl: string, lines: number, mode: Mode): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "bench-scheduling-"));
  const storage = await createFsStorage({ dir });
  const ownerWeights = new Map(KEYS.map((key, i) => [key, i + 1]));
  const engine = createBatchEngine({ storage, target: createHttpTarget({ baseUrl }), logger: silentLogger, concurrency: CONCURRENCY, ownerWeights });
  await engine.start();
  const batches = mode === "one_batch" ? 1 : BATCHES;
  const per = Math.ceil(lines / batches);
  const files: { owner: string; id: string; extra: Record<string, unknown> }[] = [];
  for (let b = 0; b < batches; b++) {
    const owner = mode === "scheduled" ? KEYS[b % KEYS.length] : "default";
    const content = new TextEncoder().encode(Array.from({ length: per }, (_, i) => lineOf(b * per + i)).join("\n"));
    const received = await engine.files.receive({ owner, filename: "in.jsonl", purpose: "batch", content });
    const file = await engine.files.commit(received, { purpose: "batch" });
    const extra = mode === "scheduled" ? { priority: b % 2, ...(b % 5 === 0 ? { max_concurrency: CONCURRENCY } : {}) } : {};
    files.push({ owner, id: file.id, extra });
  }
  const started = performance.now();
  const created = [];
  for (const { owner, id, extra } of files) {
    const batch = await engine.createBatch(owner, { input_file_id: id, endpoint: "/v1/chat/completions", completion_window: "24h", ...extra });
    created.push({ owner, id: batch.id });
  }
  let total = 0;
  for (const { owner, id } of created) {
    for (;;) {
      const done = await engine.getBatch(owner, id);
      if (done.status === "completed") {
        if (done.request_counts.failed) throw new Error(`${done.request_counts.failed} requests failed`);
        total += done.request_counts.total;
        break;
      }
      if (done.status === "failed") throw new Error(JSON.stringify(done.errors));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
  const perSecond = total / ((performance.now() - started) / 1000);
  await engine.close();
  await storage.close();
  await rm(dir, { recursive: true, force: true });
  return perSecond;
}

const runs = runsArg(5);
const results: Record<string, Record<Mode, number[]>> = {};
for (const [name, latency, lines] of [["fast", 0, 20_000], ["latency50", 50, 3_200]] as const) {
  const upstream = await startBenchUpstream(latency);
  const modes: Record<Mode, number[]> = { one_batch: [], twenty_batches: [], scheduled: [] };
  // One round not counted: code compiled, connections open.
  for (const mode of Object.keys(modes) as Mode[]) await rate(upstream.baseUrl, lines / 4, mode);
  for (let i = 0; i < runs; i++) {
    for (const mode of Object.keys(modes) as Mode[]) modes[mode].push(await rate(upstream.baseUrl, lines, mode));
  }
  await upstream.stop();
  results[name] = modes;
}
const ratio = (name: string, over: Mode) => Number(pairedRatio(results[name].scheduled, results[name][over]).toFixed(3));
const pass = ratio("fast", "twenty_batches") >= 0.95 && ratio("latency50", "twenty_batches") >= 0.95;
report("scheduling", {
  concurrency: CONCURRENCY,
  batches: BATCHES,
  keys: KEYS.length,
  fast_one_batch_per_s: Math.round(median(results.fast.one_batch)),
  fast_twenty_batches_per_s: Math.round(median(results.fast.twenty_batches)),
  fast_scheduled_per_s: Math.round(median(results.fast.scheduled)),
  fast_ratio: ratio("fast", "twenty_batches"),
  fast_ratio_over_one_batch: ratio("fast", "one_batch"),
  latency50_twenty_batches_per_s: Math.round(median(results.latency50.twenty_batches)),
  latency50_scheduled_per_s: Math.round(median(results.latency50.scheduled)),
  latency50_ratio: ratio("latency50", "twenty_batches"),
  latency50_ratio_over_one_batch: ratio("latency50", "one_batch"),
  bar: ">= 0.95 (scheduled ÷ the same 20 batches of one key)",
  pass,
  runs: Object.fromEntries(
    Object.entries(results).map(([name, modes]) => [name, Object.fromEntries(Object.entries(modes).map(([m, v]) => [m, v.map(Math.round)]))]),
  ),
});
