/**
 * Benchmark 14 — prefix grouping. An upstream of its own process simulates a
 * prefix cache (`_prefix_cache_server.mjs`): a request whose leading messages
 * were computed recently answers in 10 ms, another in 60 ms, and it keeps the
 * 64 prefixes used last (a third of those the input has: long system prompts fill a GPU's cache). 4,000 lines, each with one of 200 system prompts and
 * a first turn (1 KB) and a question of its own, in random order, run at
 * concurrency 32 in input order and with prefix grouping. Reported: lines/s of
 * each, the gain (paired run by run), and the share of requests that hit the cache.
 */
import { createBatchEngine } from "../src/engine/engine.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { createMemoryStorage } from "../src/storage/memory.ts";
import { createHttpTarget } from "../src/targets/http_target.ts";
import { median, pairedRatio, report, runToCompletion, runsArg, startUpstreamScript, uploadToEngine } from "./_lib.ts";

const LINES = 4_000;
const PREFIXES = 200;
const CONCURRENCY = 32;
const [HIT_MS, MISS_MS, CACHE_SIZE] = [10, 60, 64];

/** A seeded generator, so that every run and runtime sends the same input. */
function random(seed: number): () => number {
  return () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
}

function input(): Uint8Array {
  const next = random(42);
  const lines = Array.from({ length: LINES }, (_, i) => {
    const prefix = Math.floor(next() * PREFIXES);
    const messages = [
      { role: "system", content: `You are assistant number ${prefix}. ${"Follow the house style. ".repeat(40)}` },
      { role: "user", content: `Context ${prefix}: the question that follows is about topic ${prefix}.` },
      { role: "assistant", content: "Understood." },
      { role: "user", content: `Question ${i}?` },
    ];
    return JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: { model: "bench", messages } });
  });
  return new TextEncoder().encode(lines.join("\n"));
}

async function cacheStats(baseUrl: string): Promise<{ hits: number; misses: number }> {
  return await (await fetch(baseUrl.replace(/\/v1$/, "/stats"))).json();
}

async function run(baseUrl: string, content: Uint8Array, prefixGrouping: boolean): Promise<{ perSecond: number; hitShare: number }> {
  const storage = createMemoryStorage();
  const engine = createBatchEngine({ storage, target: createHttpTarget({ baseUrl }), logger: silentLogger, concurrency: CONCURRENCY, prefixGrouping });
  await engine.start();
  const fileId = await uploadToEngine(engine, content);
  const before = await cacheStats(baseUrl);
  const perSecond = await runToCompletion(engine, fileId);
  const after = await cacheStats(baseUrl);
  await engine.close();
  await storage.close();
  const hits = after.hits - before.hits;
  return { perSecond, hitShare: hits / (hits + after.misses - before.misses) };
}

const runs = runsArg(3);
const content = input();
const modes = { input_order: false, grouped: true } as const;
const rates: Record<keyof typeof modes, number[]> = { input_order: [], grouped: [] };
const hits: Record<keyof typeof modes, number[]> = { input_order: [], grouped: [] };
for (let i = 0; i < runs; i++) {
  for (const [mode, grouping] of Object.entries(modes) as [keyof typeof modes, boolean][]) {
    // A fresh upstream each run: its cache starts empty.
    const upstream = await startUpstreamScript("./_prefix_cache_server.mjs", [String(HIT_MS), String(MISS_MS), String(CACHE_SIZE)]);
    const { perSecond, hitShare } = await run(upstream.baseUrl, content, grouping);
    await upstream.stop();
    rates[mode].push(perSecond);
    hits[mode].push(hitShare);
  }
}
const gain = Number(pairedRatio(rates.grouped, rates.input_order).toFixed(2));
report("prefix_grouping", {
  lines: LINES,
  prefixes: PREFIXES,
  concurrency: CONCURRENCY,
  hit_ms: HIT_MS,
  miss_ms: MISS_MS,
  cache_size: CACHE_SIZE,
  input_order_per_s: Math.round(median(rates.input_order)),
  grouped_per_s: Math.round(median(rates.grouped)),
  gain,
  input_order_hit_share: Number(median(hits.input_order).toFixed(3)),
  grouped_hit_share: Number(median(hits.grouped).toFixed(3)),
  bar: "grouped ÷ input order > 1 (a gain to state; grouping is on by default)",
  pass: gain > 1,
  runs: { input_order: rates.input_order.map(Math.round), grouped: rates.grouped.map(Math.round) },
});
