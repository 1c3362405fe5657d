/**
 * Benchmark 2 — HTTP upstream efficiency. Against a minimal local upstream (its
 * own process) that answers at once: batchspool's lines per second ÷ a plain
 * fetch loop with the same concurrency hitting the upstream directly (bar ≥ 0.8).
 * With 50 ms of latency at the upstream: throughput ≥ 0.9 × concurrency ÷ latency.
 *
 * The engine reaches a plain-HTTP upstream through its own HTTP/1.1 client
 * (`http1_post.ts`), not `fetch`, so the run also reports a plain loop of the engine's
 * own target (`createHttpTarget().send`: the same transport, deadlines and
 * response parsing): the engine's overhead over the way it sends, beside the
 * bar's comparison with what a script would write by hand.
 */
import { createHttpTarget } from "../src/targets/http_target.ts";
import { median, pairedRatio, report, runsArg, startBenchUpstream, timeBatchInProcess } from "./_lib.ts";

const CONCURRENCY = 32;
const body = { model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] };
const lineOf = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body });

function engineRate(baseUrl: string, lines: number): Promise<number> {
  const content = new TextEncoder().encode(Array.from({ length: lines }, (_, i) => lineOf(i)).join("\n"));
  return timeBatchInProcess(createHttpTarget({ baseUrl }), content, CONCURRENCY);
}

/** Lines per second of `CONCURRENCY` loops that each send one request after another. */
async function loopRate(lines: number, sendOne: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < lines) {
      next++;
      await sendOne();
    }
  }));
  return lines / ((performance.now() - started) / 1000);
}

/** The bar's floor: what a script would write by hand. */
function plainFetchRate(baseUrl: string, lines: number): Promise<number> {
  const text = JSON.stringify(body);
  return loopRate(lines, async () => {
    const response = await fetch(`${baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: text,
    });
    await response.json();
  });
}

/** The engine's own target with no engine: the same transport, deadlines and response parsing. */
function targetLoopRate(baseUrl: string, lines: number): Promise<number> {
  const target = createHttpTarget({ baseUrl });
  const signal = new AbortController().signal;
  const bodyText = JSON.stringify(body);
  return loopRate(lines, () => target.send({ url: "/v1/chat/completions", bodyText, signal }));
}

const runs = runsArg(9);
const LINES = 20_000;
const fast = await startBenchUpstream(0);
// One run of each, not counted, so both are measured with their code compiled and connections open.
await plainFetchRate(fast.baseUrl, LINES / 4);
await targetLoopRate(fast.baseUrl, LINES / 4);
await engineRate(fast.baseUrl, LINES / 4);
const engine: number[] = [];
const plain: number[] = [];
const targetLoop: number[] = [];
for (let i = 0; i < runs; i++) {
  plain.push(await plainFetchRate(fast.baseUrl, LINES));
  targetLoop.push(await targetLoopRate(fast.baseUrl, LINES));
  engine.push(await engineRate(fast.baseUrl, LINES));
}
await fast.stop();
const slow = await startBenchUpstream(50);
const latency: number[] = [];
for (let i = 0; i < runs; i++) latency.push(await engineRate(slow.baseUrl, 2_000));
await slow.stop();
const ratio = pairedRatio(engine, plain);
const ideal = CONCURRENCY / 0.05;
report("http_upstream", {
  concurrency: CONCURRENCY,
  lines: LINES,
  engine_lines_per_s: Math.round(median(engine)),
  plain_fetch_per_s: Math.round(median(plain)),
  ratio: Number(ratio.toFixed(3)),
  bar: ">= 0.8",
  pass: ratio >= 0.8,
  target_loop_per_s: Math.round(median(targetLoop)),
  ratio_over_target_loop: Number(pairedRatio(engine, targetLoop).toFixed(3)),
  latency50_lines_per_s: Math.round(median(latency)),
  latency50_ideal: ideal,
  latency50_fraction: Number((median(latency) / ideal).toFixed(3)),
  latency50_pass: median(latency) >= 0.9 * ideal,
  runs: {
    engine: engine.map(Math.round),
    plain: plain.map(Math.round),
    target_loop: targetLoop.map(Math.round),
    latency50: latency.map(Math.round),
  },
});
