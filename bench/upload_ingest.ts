/**
 * Benchmark 3 — upload ingest: a 200 MB JSONL upload to the real server over
 * HTTP (streamed, counted, hashed, written), then its validation at batch
 * creation, in MB/s; beside it the floor: copying the same file on disk and
 * hashing it (one after the other, as the upload must do both).
 * Bar: upload ≥ 0.5 × floor, with the runtime's default way of validating
 * (on a worker thread on Deno, on the main thread on Node and Bun); both
 * ways are measured and reported. Each upload goes to a freshly started
 * server (the bar's figure); the default way is then measured once more on the
 * same, now warm, server and reported beside it.
 */
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FINAL_STATUSES } from "../src/batch/model/objects.ts";
import { createApiClient } from "../src/client/api_client.ts";
import { createSha256 } from "../src/integrity/sha256.ts";
import { SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT } from "../src/runtime/threads.ts";
import { curlUpload, median, pairedRatio, pollBatch, report, runsArg, startBenchServer, writeJsonl } from "./_lib.ts";

const MB = 1_000_000;
const SIZE_MB = Number(process.env.BENCH_UPLOAD_MB ?? 200);
const LINES = 50_000;

async function copyFile(from: string, to: string): Promise<number> {
  const started = performance.now();
  const input = await open(from, "r");
  const output = await open(to, "w");
  const buffer = new Uint8Array(256 * 1024);
  for (;;) {
    const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
    if (!bytesRead) break;
    await output.write(buffer.subarray(0, bytesRead));
  }
  await output.sync();
  await input.close();
  await output.close();
  return (performance.now() - started) / 1000;
}

async function hashFile(path: string): Promise<number> {
  const started = performance.now();
  const input = await open(path, "r");
  const hash = createSha256();
  const buffer = new Uint8Array(256 * 1024);
  for (;;) {
    const { bytesRead } = await input.read(buffer, 0, buffer.length, null);
    if (!bytesRead) break;
    hash.update(buffer.subarray(0, bytesRead));
  }
  hash.hexDigest();
  await input.close();
  return (performance.now() - started) / 1000;
}

const dir = await mkdtemp(join(tmpdir(), "bench-ingest-"));
const input = join(dir, "in.jsonl");
await writeJsonl(input, LINES, Math.round((SIZE_MB * MB) / LINES));
const size = (await stat(input)).size;
const runs = runsArg(5);
const floor: number[] = [];
const copy: number[] = [];
const hashing: number[] = [];
const upload: number[] = [];
const ingestInThread: number[] = [];
const ingestWithWorker: number[] = [];
const warmIngest: number[] = [];

/**
 * Uploads the file to a fresh server `times` times, each followed by a batch
 * created on it and cancelled; returns [upload-only, upload+validation] in
 * MB/s for each: the first is a fresh process's, the later ones a warm one's.
 */
async function ingestRuns(serverArgs: string[], data: string, times = 1): Promise<[number, number][]> {
  const server = await startBenchServer(["--upstream", "mock", "--data", data, ...serverArgs]);
  const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
  // This client's first request is not timed: on Node it loads `fetch` itself (~40 ms measured), which is not the server's time.
  await api.listBatches(1);
  const rates: [number, number][] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    const file = await curlUpload(server.baseURL, input, "batch");
    const uploaded = performance.now();
    const batch = await api.createBatch({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const validated = await pollBatch(server.baseURL, batch.id, (b) => b.status !== "validating", 5);
    const finished = performance.now();
    if (validated.status === "failed") throw new Error(JSON.stringify(validated.errors));
    await api.cancelBatch(batch.id).catch(() => {});
    // The next upload starts once this batch has stopped, so it has the server to itself.
    await pollBatch(server.baseURL, batch.id, (b) => FINAL_STATUSES.has(b.status), 20);
    rates.push([size / MB / ((uploaded - started) / 1000), size / MB / ((finished - started) / 1000)]);
  }
  await server.stop();
  await rm(data, { recursive: true, force: true });
  return rates;
}
for (let i = 0; i < runs; i++) {
  const copySeconds = await copyFile(input, join(dir, "copy.jsonl"));
  const hashSeconds = await hashFile(input);
  await rm(join(dir, "copy.jsonl"));
  copy.push(size / MB / copySeconds);
  hashing.push(size / MB / hashSeconds);
  floor.push(size / MB / (copySeconds + hashSeconds));

  // The runtime's default way is measured twice on one server: the bar's upload, a fresh process's, then a warm one.
  const inThreadRuns = await ingestRuns(
    ["--no-scan-worker"],
    join(dir, `data-${i}`),
    SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? 1 : 2,
  );
  const workerRuns = await ingestRuns(
    ["--scan-worker"],
    join(dir, `data-worker-${i}`),
    SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? 2 : 1,
  );
  const defaultRuns = SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? workerRuns : inThreadRuns;
  upload.push(defaultRuns[0][0]);
  warmIngest.push(defaultRuns[1][1]);
  ingestInThread.push(inThreadRuns[0][1]);
  ingestWithWorker.push(workerRuns[0][1]);
}
await rm(dir, { recursive: true, force: true });
const ingest = SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? ingestWithWorker : ingestInThread;
const ratio = pairedRatio(ingest, floor);
report("upload_ingest", {
  file_mb: Number((size / MB).toFixed(1)),
  lines: LINES,
  ingest_mb_per_s: Number(median(ingest).toFixed(1)),
  upload_only_mb_per_s: Number(median(upload).toFixed(1)),
  floor_mb_per_s: Number(median(floor).toFixed(1)),
  copy_mb_per_s: Number(median(copy).toFixed(1)),
  hash_mb_per_s: Number(median(hashing).toFixed(1)),
  ratio: Number(ratio.toFixed(3)),
  bar: ">= 0.5",
  pass: ratio >= 0.5,
  default_scan: SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? "worker" : "main thread",
  main_thread_scan_ingest_mb_per_s: Number(median(ingestInThread).toFixed(1)),
  main_thread_scan_ratio: Number(pairedRatio(ingestInThread, floor).toFixed(3)),
  scan_worker_ingest_mb_per_s: Number(median(ingestWithWorker).toFixed(1)),
  scan_worker_ratio: Number(pairedRatio(ingestWithWorker, floor).toFixed(3)),
  warm_server_ingest_mb_per_s: Number(median(warmIngest).toFixed(1)),
  warm_server_ratio: Number(pairedRatio(warmIngest, floor).toFixed(3)),
});
