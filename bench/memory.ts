/**
 * Benchmark 4 — memory: peak RSS of the real server while a 200 MB / 50,000-line
 * batch is uploaded and processed (mock target), and the same for a 20 MB /
 * 5,000-line batch (same line size). Bar: under 200 MB, and the 200 MB run
 * within 1.5× the 20 MB run. RSS is sampled from /proc every 50 ms, and the
 * kernel's own peak (VmHWM) is read at the end.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApiClient } from "../src/client/api_client.ts";
import { curlUpload, memoryOf, pollBatch, report, startBenchServer, writeJsonl } from "./_lib.ts";

const LINE_BYTES = 4000;

async function peakFor(lines: number, dir: string): Promise<{ peakMiB: number; idleMiB: number; seconds: number }> {
  const input = join(dir, `in-${lines}.jsonl`);
  await writeJsonl(input, lines, LINE_BYTES);
  const server = await startBenchServer(["--upstream", "mock", "--data", join(dir, `data-${lines}`)]);
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
const small = await peakFor(5_000, dir);
const large = await peakFor(50_000, dir);
await rm(dir, { recursive: true, force: true });
const ratio = large.peakMiB / small.peakMiB;
report("memory", {
  small: { file_mb: 20, lines: 5_000, peak_rss_mib: Math.round(small.peakMiB), idle_rss_mib: Math.round(small.idleMiB), seconds: Number(small.seconds.toFixed(1)) },
  large: { file_mb: 200, lines: 50_000, peak_rss_mib: Math.round(large.peakMiB), idle_rss_mib: Math.round(large.idleMiB), seconds: Number(large.seconds.toFixed(1)) },
  ratio: Number(ratio.toFixed(2)),
  bar: "< 200 MiB and ratio <= 1.5",
  pass: large.peakMiB < 200 && ratio <= 1.5,
});
