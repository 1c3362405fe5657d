/**
 * Benchmark 15 — the transport on each runtime. Against two local upstreams
 * that answer at once, each in its own process — section 2's Node server and
 * Bun's own server (the fastest here) — at concurrency 32, 20,000 lines: a
 * plain `fetch` loop (the bar's floor: what a script would write), and the
 * engine (fs storage) sending through its HTTP/1.1 client on `node:net` and
 * through the runtime's `fetch`. Reports each engine ÷ the fetch loop (paired
 * run by run; bar ≥ 0.8), to choose the transport per runtime by measurement.
 */
import { createHttpTarget } from "../src/targets/http_target.ts";
import { median, pairedRatio, report, runsArg, startUpstreamScript, timeBatchInProcess } from "./_lib.ts";

const CONCURRENCY = 32;
const LINES = 20_000;
const body = { model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] };
const content = new TextEncoder().encode(
  Array.from({ length: LINES }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body })).join("\n"),
);

function engineRate(baseUrl: string, transport: "http1" | "fetch", lines = content): Promise<number> {
  return timeBatchInProcess(createHttpTarget({ baseUrl, transport }), lines, CONCURRENCY);
}

/** Lines per second of `CONCURRENCY` loops that each POST one request after another with `fetch`. */
async function fetchLoopRate(baseUrl: string, lines: number): Promise<number> {
  const text = JSON.stringify(body);
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < lines) {
      next++;
      const response = await fetch(`${baseUrl}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
      await response.json();
    }
  }));
  return lines / ((performance.now() - started) / 1000);
}

const runs = runsArg(3);
const result: Record<string, unknown> = { concurrency: CONCURRENCY, lines: LINES };
let pass = true;
const upstreams = [["node_upstream", "./_upstream_server.mjs", ["0"], "node"], ["bun_upstream", "./_bun_upstream.ts", [], "bun"]] as const;
for (const [name, script, args, runtime] of upstreams) {
  const upstream = await startUpstreamScript(script, [...args], runtime);
  const small = content.subarray(0, content.indexOf(10, content.length / 4));
  // One round not counted: code compiled, connections open.
  await fetchLoopRate(upstream.baseUrl, LINES / 4);
  await engineRate(upstream.baseUrl, "http1", small);
  await engineRate(upstream.baseUrl, "fetch", small);
  const rates = { fetch_loop: [] as number[], engine_http1: [] as number[], engine_fetch: [] as number[] };
  for (let i = 0; i < runs; i++) {
    rates.fetch_loop.push(await fetchLoopRate(upstream.baseUrl, LINES));
    rates.engine_http1.push(await engineRate(upstream.baseUrl, "http1"));
    rates.engine_fetch.push(await engineRate(upstream.baseUrl, "fetch"));
  }
  await upstream.stop();
  const http1 = Number(pairedRatio(rates.engine_http1, rates.fetch_loop).toFixed(3));
  const viaFetch = Number(pairedRatio(rates.engine_fetch, rates.fetch_loop).toFixed(3));
  pass &&= Math.max(http1, viaFetch) >= 0.8;
  Object.assign(result, {
    [`${name}_fetch_loop_per_s`]: Math.round(median(rates.fetch_loop)),
    [`${name}_engine_http1_per_s`]: Math.round(median(rates.engine_http1)),
    [`${name}_engine_fetch_per_s`]: Math.round(median(rates.engine_fetch)),
    [`${name}_http1_ratio`]: http1,
    [`${name}_fetch_ratio`]: viaFetch,
    [`${name}_runs`]: Object.fromEntries(Object.entries(rates).map(([mode, values]) => [mode, values.map(Math.round)])),
  });
}
report("transports", { ...result, bar: "engine ÷ fetch loop >= 0.8 with the better transport, on both upstreams", pass });
