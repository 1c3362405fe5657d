/**
 * Benchmark 4 — memory: peak RSS of the real server while a 200 MB / 50,000-line
 * batch is uploaded and processed (mock target), and the same for a 20 MB /
 * 5,000-line batch (same line size). Bar: under 200 MB, and the 200 MB run
 * within 1.5× the 20 MB run. RSS is sampled from /proc every 50 ms, and the
 * kernel's own peak (VmHWM) is read at the end. Each size runs 3 times (a fresh
 * server each time, the two sizes taking turns); the figures are medians, the
 * ratio the median of each pair's.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApiClient } from "../src/client/api_client.ts";
import { curlUpload, median, memoryOf, pairedRatio, pollBatch, report, runsArg, startBenchServer, writeJsonl } from "./_lib.ts";

const LINE_BYTES = 4000;

async function peakFor(lines: number, dir: string, run: number): Promise<{ peakMiB: number; idleMiB: number; seconds: number }> {
  const input = join(dir, `in-${lines}.jsonl`);
  if (run === 0) await writeJsonl(input, lines, LINE_BYTES);
  const server = await startBenchServer(["--upstream", "mock", "--data", join(dir, `data-${lines}-${run}`)]);
  const pid = server.child.pid!;
  const idleMiB = (await memoryOf(pid)).rssMiB;
  let sampled = 0;
  const sampler = setInterval(() => {
    memoryOf(pid).then((m) => (sampled = Math.max(sampled, m.rssMiB)), () => {});
  }, 50);
  const started = performance.now();
  const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
  const file = await curlUpload(server.baseURL, input, "batch");
  const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const done = await pollBatch(server.baseURL, batch.id, (b) => ["completed", "failed"].includes(b.status), 100);
  if (done.status !== "completed" || done.request_counts.completed !== lines) throw new Error(JSON.stringify(done));
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const { peakMiB } = await memoryOf(pid);
  await server.stop();
  return { peakMiB: Math.max(peakMiB, sampled), idleMiB, seconds };
}

const dir = await mkdtemp(join(tmpdir(), "bench-memory-"));
const runs = runsArg(3);
const small: Awaited<ReturnType<typeof peakFor>>[] = [];
const large: Awaited<ReturnType<typeof peakFor>>[] = [];
for (let run = 0; run < runs; run++) {
  small.push(await peakFor(5_000, dir, run));
  large.push(await peakFor(50_000, dir, run));
}
await rm(dir, { recursive: true, force: true });
const summary = (results: Awaited<ReturnType<typeof peakFor>>[], fileMb: number, lines: number) => ({
  file_mb: fileMb,
  lines,
  peak_rss_mib: Math.round(median(results.map((r) => r.peakMiB))),
  idle_rss_mib: Math.round(median(results.map((r) => r.idleMiB))),
  seconds: Number(median(results.map((r) => r.seconds)).toFixed(1)),
  peaks: results.map((r) => Math.round(r.peakMiB)),
});
const ratio = pairedRatio(large.map((r) => r.peakMiB), small.map((r) => r.peakMiB));
const largePeak = median(large.map((r) => r.peakMiB));
report("memory", {
  small: summary(small, 20, 5_000),
  large: summary(large, 200, 50_000),
  ratio: Number(ratio.toFixed(2)),
  bar: "< 200 MiB and ratio <= 1.5",
  pass: largePeak < 200 && ratio <= 1.5,
});
