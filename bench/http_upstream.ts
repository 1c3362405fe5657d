/**
 * Benchmark 2 — HTTP upstream efficiency. Against a minimal local upstream (its
 * own process) that answers at once: batchspool's lines per second ÷ a plain
 * fetch loop with the same concurrency hitting the upstream directly (bar ≥ 0.8).
 * With 50 ms of latency at the upstream: throughput ≥ 0.9 × concurrency ÷ latency.
 *
 * The engine reaches a plain-HTTP upstream through `node:http` on Node
 * (`http_transport.ts`), so the run also reports a plain loop over that same
 * transport: the engine's overhead over the way it sends, beside the bar's
 * comparison with what a script would write by hand.
 */
import { createHttpTarget } from "../src/batch/targets/fetch_target.ts";
import { choosePost } from "../src/batch/targets/http_transport.ts";
import type { RequestAbort } from "../src/batch/targets/request_deadlines.ts";
import { median, pairedRatio, report, runsArg, startBenchUpstream, timeBatchInProcess } from "./_lib.ts";

const CONCURRENCY = 32;
const body = { model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] };
const lineOf = (i: number) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body });

function engineRate(baseUrl: string, lines: number): Promise<number> {
  const content = new TextEncoder().encode(Array.from({ length: lines }, (_, i) => lineOf(i)).join("\n"));
  return timeBatchInProcess(createHttpTarget({ baseUrl }), content, CONCURRENCY);
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

async function plainTransportRate(baseUrl: string, lines: number): Promise<number> {
  const post = choosePost(baseUrl);
  const url = `${baseUrl}/chat/completions`;
  const headers = { "content-type": "application/json" };
  const abort: RequestAbort = { signal: new AbortController().signal, onAbort() {} }; // never aborted
  const started = performance.now();
  let next = 0;
  const text = JSON.stringify(body);
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < lines) {
      next++;
      JSON.parse((await post(url, headers, text, abort)).text);
    }
  }));
  return lines / ((performance.now() - started) / 1000);
}

const runs = runsArg(5);
const LINES = 20_000;
const fast = await startBenchUpstream(0);
// One run of each, not counted, so both are measured with their code compiled and connections open.
await plainFetchRate(fast.baseUrl, LINES / 4);
await plainTransportRate(fast.baseUrl, LINES / 4);
await engineRate(fast.baseUrl, LINES / 4);
const engine: number[] = [];
const plain: number[] = [];
const transport: number[] = [];
for (let i = 0; i < runs; i++) {
  plain.push(await plainFetchRate(fast.baseUrl, LINES));
  transport.push(await plainTransportRate(fast.baseUrl, LINES));
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
  plain_transport_per_s: Math.round(median(transport)),
  ratio_same_transport: Number(pairedRatio(engine, transport).toFixed(3)),
  latency50_lines_per_s: Math.round(median(latency)),
  latency50_ideal: ideal,
  latency50_fraction: Number((median(latency) / ideal).toFixed(3)),
  latency50_pass: median(latency) >= 0.9 * ideal,
  runs: {
    engine: engine.map(Math.round),
    plain: plain.map(Math.round),
    transport: transport.map(Math.round),
    latency50: latency.map(Math.round),
  },
});
