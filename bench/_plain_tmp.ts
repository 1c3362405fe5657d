import { startBenchUpstream } from "./_lib.ts";
const up = await startBenchUpstream(50);
const body = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "x".repeat(200) }] });
const N = 2000; let next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: 32 }, async () => { while (next < N) { next++; const r = await fetch(`${up.baseUrl}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body }); await r.json(); } }));
console.log("plain fetch at 50ms:", Math.round(N / ((performance.now() - t0) / 1000)), "/s");
await up.stop();
