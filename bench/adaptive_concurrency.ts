/**
 * Benchmark 13 — adaptive concurrency. An upstream of its own process answers
 * in 20 ms while it has fewer than 16 requests in flight and 429 at once
 * above (as a model server with a hard limit, without Retry-After). The same
 * lines run with fixed limits (8, 12, 16 in flight: 16 is the best a fixed
 * limit can do) and with the adaptive limit starting at 64. Bar: adaptive
 * throughput ≥ 0.9 × the best fixed limit's (paired run by run), and at most
 * 5 % of the requests it sends refused.
 */
import { createBatchEngine } from "../src/engine/engine.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { createMemoryStorage } from "../src/storage/memory.ts";
import { createHttpTarget } from "../src/targets/http_target.ts";
import type { Target } from "../src/targets/types.ts";
import { median, pairedRatio, report, runToCompletion, runsArg, startBenchUpstream, uploadToEngine } from "./_lib.ts";

const CAPACITY = 16;
const LATENCY_MS = 20;
const ADAPTIVE_FROM = 64;
const LINES = 8_000;
const body = { model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] };
const lineOf = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body });

type Mode = "fixed_8" | "fixed_12" | "fixed_16" | "adaptive";
const MODES: Mode[] = ["fixed_8", "fixed_12", "fixed_16", "adaptive"];

async function upstreamStats(baseUrl: string): Promise<{ served: number; refused: number }> {
  return await (await fetch(baseUrl.replace(/\/v1$/, "/stats"))).json();
}

/** Lines per second and the share of requests refused, for `lines` lines run as `mode` says. */
async function run(baseUrl: string, lines: number, mode: Mode): Promise<{ perSecond: number; refused: number }> {
  const storage = createMemoryStorage();
  const adaptive = mode === "adaptive";
  const http = createHttpTarget({ baseUrl });
  // The upstream as one lane: fixed at the mode's limit, or adapted from 64 down.
  const target: Target = { description: http.description, send: (request) => http.send(request), upstreamOf: () => ({ id: "bench", adaptive }) };
  const concurrency = adaptive ? ADAPTIVE_FROM : Number(mode.slice("fixed_".length));
  const engine = createBatchEngine({ storage, target, logger: silentLogger, concurrency, maxRetries: 20 });
  await engine.start();
  const content = new TextEncoder().encode(Array.from({ length: lines }, (_, i) => lineOf(i)).join("\n"));
  const fileId = await uploadToEngine(engine, content);
  const before = await upstreamStats(baseUrl);
  const perSecond = await runToCompletion(engine, fileId);
  const after = await upstreamStats(baseUrl);
  await engine.close();
  await storage.close();
  const served = after.served - before.served;
  const refused = after.refused - before.refused;
  return { perSecond, refused: refused / (served + refused) };
}

const runs = runsArg(3);
const upstream = await startBenchUpstream(LATENCY_MS, CAPACITY);
const rates: Record<Mode, number[]> = { fixed_8: [], fixed_12: [], fixed_16: [], adaptive: [] };
const refusedShares: Record<Mode, number[]> = { fixed_8: [], fixed_12: [], fixed_16: [], adaptive: [] };
// One round not counted: code compiled, connections open.
for (const mode of MODES) await run(upstream.baseUrl, LINES / 4, mode);
for (let i = 0; i < runs; i++) {
  for (const mode of MODES) {
    const { perSecond, refused } = await run(upstream.baseUrl, LINES, mode);
    rates[mode].push(perSecond);
    refusedShares[mode].push(refused);
  }
}
await upstream.stop();
const ratio = Number(pairedRatio(rates.adaptive, rates.fixed_16).toFixed(3));
const refused = Number(Math.max(...refusedShares.adaptive).toFixed(4));
report("adaptive_concurrency", {
  capacity: CAPACITY,
  latency_ms: LATENCY_MS,
  adaptive_from: ADAPTIVE_FROM,
  lines: LINES,
  ...Object.fromEntries(MODES.map((mode) => [`${mode}_per_s`, Math.round(median(rates[mode]))])),
  ratio_over_fixed_16: ratio,
  adaptive_refused_share_max: refused,
  bar: ">= 0.9 of the best fixed limit, <= 5 % refused",
  pass: ratio >= 0.9 && refused <= 0.05,
  runs: Object.fromEntries(MODES.map((mode) => [mode, rates[mode].map(Math.round)])),
  refused_shares: Object.fromEntries(MODES.map((mode) => [mode, refusedShares[mode].map((share) => Number(share.toFixed(4)))])),
});
