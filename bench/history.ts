/**
 * Benchmark 8 — history: a data directory with 10,000 finished batches (each
 * with its input file and output file) against an empty one. Measures restart
 * to ready (process start to `/health` ok) for both, and the latency of list
 * pages at that size: `GET /v1/batches?limit=100` and `GET /v1/files?limit=100`,
 * paging from the newest on.
 * Bars: restart with history within 1.5× of the empty directory's; a list page
 * under 10 ms (median; the first page after a start also reads its folder's
 * names, once, and is reported apart).
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { newBatchId, newFileId } from "../src/batch/model/ids.ts";
import type { BatchRecord, FileRecord } from "../src/batch/model/objects.ts";
import { emptyUsage } from "../src/batch/model/objects.ts";
import { batchDocKey, errorLogKey, fileBlobKey, fileDocKey, outputLogKey } from "../src/batch/model/storage_keys.ts";
import { MarkingSha256 } from "../src/integrity/digest_marks.ts";
import { sealEnvelope } from "../src/integrity/envelope.ts";
import { concatBytes } from "../src/shared/concat_bytes.ts";
import { median, percentile, report, runsArg } from "./_lib.ts";

const BATCHES = Number(process.env.HISTORY_BATCHES ?? 10_000);
const OWNER = "default";
const encoder = new TextEncoder();
const SEGMENT_HEADER = encoder.encode('{"sealed":[]}\n');

/** The data folder of a fresh data directory, as the fs store lays it out (`src/storage/fs/fs_storage.ts`). */
const folderOf = (data: string) => join(data, "data-1");

/** Writes a document file as the fs store lays it out (a bench fixture: no fsync). */
async function writeDocument(data: string, key: string, value: unknown): Promise<void> {
  const path = join(folderOf(data), "docs", `${key}.json`);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, sealEnvelope({ version: 3, value }));
}

async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}

/** A data directory holding `count` finished batches of 20 lines each, written straight to disk, as this version lays it out. */
async function writeHistory(data: string, count: number): Promise<void> {
  await mkdir(folderOf(data), { recursive: true });
  await writeFile(join(folderOf(data), "layout.json"), JSON.stringify({ tempFolders: true }));
  const start = Date.now() - count * 60_000;
  const input = encoder.encode(
    Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } })).join("\n") + "\n",
  );
  const inputDigest = new MarkingSha256().update(input).finish();
  const output = encoder.encode(
    Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({ id: `batch_req_00_${i + 1}`, custom_id: `r${i}`, response: { status_code: 200, request_id: null, body: {} }, error: null }))
      .join("\n") + "\n",
  );
  const outputDigest = new MarkingSha256().update(output).finish();
  for (let n = 0; n < count; n++) {
    const at = start + n * 60_000;
    const seconds = Math.floor(at / 1000);
    const inputId = newFileId(at);
    const batchId = newBatchId(at);
    const outputId = newFileId(at + 1);
    const fileRecord = (id: string, purpose: "batch" | "batch_output", digest: typeof inputDigest, content: FileRecord["content"]): FileRecord => ({
      file: {
        id,
        object: "file",
        bytes: digest.bytes,
        created_at: seconds,
        filename: purpose === "batch" ? "in.jsonl" : `${batchId}_output.jsonl`,
        purpose,
        status: "processed",
        expires_at: purpose === "batch" ? seconds + 30 * 86_400 : null,
        status_details: null,
      },
      owner: OWNER,
      sha256: digest.sha256,
      marks: digest.marks,
      content,
    });
    await writeBytes(join(folderOf(data), "blobs", fileBlobKey(inputId)), input);
    await writeDocument(data, fileDocKey(OWNER, inputId), fileRecord(inputId, "batch", inputDigest, { store: "blobs", key: fileBlobKey(inputId) }));
    // A log is a segment of epoch 1 whose header seals nothing before it (`src/storage/fs/logs.ts`).
    await writeBytes(join(folderOf(data), "logs", `${outputLogKey(batchId)}~1`), concatBytes([SEGMENT_HEADER, output], SEGMENT_HEADER.length + output.length));
    await writeDocument(data, fileDocKey(OWNER, outputId), fileRecord(outputId, "batch_output", outputDigest, { store: "logs", key: outputLogKey(batchId) }));
    void errorLogKey;
    const record: BatchRecord = {
      batch: {
        id: batchId,
        object: "batch",
        endpoint: "/v1/chat/completions",
        model: "m",
        input_file_id: inputId,
        completion_window: "24h",
        status: "completed",
        output_file_id: outputId,
        error_file_id: null,
        metadata: { n: String(n) },
        errors: null,
        created_at: seconds,
        in_progress_at: seconds,
        expires_at: seconds + 86_400,
        finalizing_at: seconds + 1,
        completed_at: seconds + 1,
        failed_at: null,
        expired_at: null,
        cancelling_at: null,
        cancelled_at: null,
        request_counts: { total: 20, completed: 20, failed: 0 },
        usage: emptyUsage(),
      },
      owner: OWNER,
      input_digest: inputDigest,
      input_lines: 20,
      output_expires_after_seconds: null,
      planned_output_file_id: outputId,
      planned_error_file_id: newFileId(at + 2),
    };
    await writeDocument(data, batchDocKey(OWNER, batchId), record);
  }
}

/** Process start to `/health` ok, then the server (left running for the caller, or stopped). */
async function timeToReady(data: string) {
  const { startServer } = await import("../tests/support/server.ts");
  const { currentRuntime } = await import("../src/runtime/detect.ts");
  const started = performance.now();
  const server = await startServer(["--upstream", "mock", "--data", data], {}, { fromBuild: currentRuntime() === "node" });
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${server.port}/health`).catch(() => null);
    if (response?.status === 200) break;
    await response?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return { ms: performance.now() - started, server };
}

/** Times each page of a list, paging `pages` deep from the newest; returns the page times in ms. */
async function timePages(baseUrl: string, path: string, pages: number): Promise<number[]> {
  const times: number[] = [];
  let after: string | null = null;
  for (let page = 0; page < pages; page++) {
    const started = performance.now();
    const response = await fetch(`${baseUrl}${path}?limit=100${after ? `&after=${after}` : ""}`);
    const body = await response.json() as { data: { id: string }[]; last_id: string | null; has_more: boolean };
    times.push(performance.now() - started);
    if (body.data.length !== 100) throw new Error(`a page of ${body.data.length}`);
    after = body.has_more ? body.last_id : null;
  }
  return times;
}

// `--write-only <dir>`: only writes the history there (to profile against it).
const writeOnly = process.argv.indexOf("--write-only");
if (writeOnly >= 0) {
  await writeHistory(process.argv[writeOnly + 1], BATCHES);
  process.exit(0);
}

const dir = await mkdtemp(join(tmpdir(), "bench-history-"));
const empty = join(dir, "empty");
const full = join(dir, "full");
const writing = performance.now();
await writeHistory(full, BATCHES);
console.log(`wrote ${BATCHES} finished batches in ${Math.round(performance.now() - writing)} ms`);

const runs = runsArg(3);
const emptyTimes: number[] = [];
const fullTimes: number[] = [];
const batchPages: number[] = [];
const filePages: number[] = [];
const firstPages: number[] = [];
for (let i = 0; i < runs; i++) {
  const fresh = await timeToReady(join(empty, String(i)));
  emptyTimes.push(fresh.ms);
  await fresh.server.stop();
  const loaded = await timeToReady(full);
  fullTimes.push(loaded.ms);
  // The first pages after a start, then again (the OS's file cache is warm either way: the data was just written).
  for (let round = 0; round < 2; round++) {
    const [firstBatchPage, ...batches] = await timePages(loaded.server.baseURL, "/batches", 20);
    const [firstFilePage, ...files] = await timePages(loaded.server.baseURL, "/files", 20);
    if (round === 0) firstPages.push(firstBatchPage, firstFilePage);
    else batches.unshift(firstBatchPage), files.unshift(firstFilePage);
    batchPages.push(...batches);
    filePages.push(...files);
  }
  await loaded.server.stop();
}
await rm(dir, { recursive: true, force: true });
const ratio = median(fullTimes) / median(emptyTimes);
report("history", {
  batches: BATCHES,
  restart_empty_ms: Math.round(median(emptyTimes)),
  restart_with_history_ms: Math.round(median(fullTimes)),
  restart_ratio: Number(ratio.toFixed(2)),
  batch_page_ms: { median: Number(median(batchPages).toFixed(1)), p99: Number(percentile(batchPages, 99).toFixed(1)) },
  file_page_ms: { median: Number(median(filePages).toFixed(1)), p99: Number(percentile(filePages, 99).toFixed(1)) },
  first_page_after_start_ms: Number(median(firstPages).toFixed(1)),
  bar: "restart with history ≤ 1.5× empty; list page median < 10 ms",
  pass: ratio <= 1.5 && median(batchPages) < 10 && median(filePages) < 10,
  runs: { empty: emptyTimes.map(Math.round), with_history: fullTimes.map(Math.round) },
});
