/** Shared helpers of the benchmarks. */
import { open } from "node:fs/promises";
import process from "node:process";
import { currentRuntime } from "../src/runtime/detect.ts";

/** Writes a JSONL file of `lines` chat requests, each padded to about `bytesPerLine`. Returns its size. */
export async function writeJsonl(path: string, lines: number, bytesPerLine = 200): Promise<number> {
  const handle = await open(path, "w");
  const encoder = new TextEncoder();
  let size = 0;
  let buffer = "";
  for (let i = 0; i < lines; i++) {
    const base = JSON.stringify({
      custom_id: `req-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "bench", messages: [{ role: "user", content: "" }] },
    });
    const pad = "x".repeat(Math.max(0, bytesPerLine - base.length - 1));
    buffer += JSON.stringify({
      custom_id: `req-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "bench", messages: [{ role: "user", content: pad }] },
    }) + "\n";
    if (buffer.length > 1 << 20) {
      const bytes = encoder.encode(buffer);
      await handle.write(bytes);
      size += bytes.length;
      buffer = "";
    }
  }
  const bytes = encoder.encode(buffer);
  await handle.write(bytes);
  size += bytes.length;
  await handle.close();
  return size;
}

/** Median of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Median of `rates[i] ÷ floors[i]`: each run is paired with the floor measured
 * just before it, since this machine drifts less within a pair than across runs.
 */
export function pairedRatio(rates: number[], floors: number[]): number {
  return median(rates.map((rate, i) => rate / floors[i]));
}

/** Percentile (0..100) of numbers. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Number of repetitions from `--runs n` (default `fallback`). */
export function runsArg(fallback: number): number {
  const at = process.argv.indexOf("--runs");
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
}

/** Prints a result for scripts/bench.mjs to collect. */
export function report(name: string, result: Record<string, unknown>): void {
  console.log(`BENCH_RESULT ${JSON.stringify({ name, runtime: currentRuntime(), ...result })}`);
}

/**
 * Starts bench/_upstream_server.mjs in its own Node process (refusing with 429
 * above `capacity` in flight when given); resolves with its base URL and a stop function.
 */
export function startBenchUpstream(latencyMs: number, capacity?: number): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  return startUpstreamScript("./_upstream_server.mjs", [String(latencyMs), ...(capacity ? [String(capacity)] : [])]);
}

/** Starts a bench upstream script of this folder with `args` in its own process (Node's, or Bun's). */
export async function startUpstreamScript(
  script: string,
  args: string[],
  runtime: "node" | "bun" = "node",
): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  const { spawn } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const command = runtime === "node" ? "node" : fileURLToPath(new URL("../node_modules/.bin/bun", import.meta.url));
  const child = spawn(command, [fileURLToPath(new URL(script, import.meta.url)), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Uint8Array) => {
      const match = /port (\d+)/.exec(String(chunk));
      if (match) resolve(Number(match[1]));
    });
    child.on("exit", (code: number | null) => reject(new Error(`upstream exited ${code}`)));
  });
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    stop: () =>
      new Promise<void>((resolve) => {
        child.on("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Starts the real server for a benchmark: from the source on Deno and Bun, from the npm build on Node. */
export async function startBenchServer(args: string[]): Promise<import("../tests/support/server.ts").ServerProcess> {
  const { startServer } = await import("../tests/support/server.ts");
  const server = await startServer(args, {}, { fromBuild: currentRuntime() === "node" });
  await server.waitFor(/ready/);
  return server;
}

/** Resident set size now and at its peak (VmHWM) of a process, in MiB, from /proc (Linux). */
export async function memoryOf(pid: number): Promise<{ rssMiB: number; peakMiB: number }> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 };
}

/** Polls a batch over HTTP until `predicate` holds; returns it. */
export async function pollBatch(
  baseUrl: string,
  id: string,
  predicate: (batch: import("../src/batch/model/objects.ts").BatchObject) => boolean,
  everyMs = 20,
): Promise<import("../src/batch/model/objects.ts").BatchObject> {
  for (;;) {
    const batch = await (await fetch(`${baseUrl}/batches/${id}`)).json();
    if (predicate(batch)) return batch;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

type Engine = import("../src/engine/types.ts").BatchEngine;

/** Uploads `content` to a started engine as the default owner's batch input; resolves with its file id. */
export async function uploadToEngine(engine: Engine, content: Uint8Array): Promise<string> {
  const received = await engine.files.receive({ owner: "default", filename: "in.jsonl", purpose: "batch", content });
  return (await engine.files.commit(received, { purpose: "batch" })).id;
}

/**
 * Creates a chat completions batch of `fileId` on `engine` and waits for it to
 * complete with no failed line; resolves with its lines per second from the create.
 */
export async function runToCompletion(engine: Engine, fileId: string): Promise<number> {
  const started = performance.now();
  const batch = await engine.createBatch("default", { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" });
  for (;;) {
    const done = await engine.getBatch("default", batch.id);
    if (done.status === "completed") {
      if (done.request_counts.failed) throw new Error(`${done.request_counts.failed} requests failed`);
      return done.request_counts.total / ((performance.now() - started) / 1000);
    }
    if (done.status === "failed") throw new Error(JSON.stringify(done.errors));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Runs one batch through an in-process engine on a fresh fs store and returns
 * its lines per second, from batch creation to `completed`.
 */
export async function timeBatchInProcess(
  target: import("../src/targets/types.ts").Target,
  content: Uint8Array,
  concurrency: number,
  openStorage?: () => Promise<import("../src/storage/types.ts").Storage & { dispose?(): Promise<void> }>,
): Promise<number> {
  const { mkdtemp, rm } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { createBatchEngine } = await import("../src/engine/engine.ts");
  const { silentLogger } = await import("../src/shared/logger.ts");
  const { createFsStorage } = await import("../src/storage/fs/fs_storage.ts");
  const dir = await mkdtemp(join(tmpdir(), "bench-batch-"));
  const storage = openStorage ? await openStorage() : await createFsStorage({ dir });
  const engine = createBatchEngine({ storage, target, logger: silentLogger, concurrency });
  await engine.start();
  const rate = await runToCompletion(engine, await uploadToEngine(engine, content));
  await engine.close();
  await storage.close();
  await (storage as { dispose?(): Promise<void> }).dispose?.();
  await rm(dir, { recursive: true, force: true });
  return rate;
}

/**
 * Uploads a file with curl, an external client, so the figure is the server's
 * and not the benchmark runtime's HTTP client (Deno's streamed-body fetch is
 * several times slower against a Deno server than curl is).
 */
export async function curlUpload(baseUrl: string, path: string, purpose: string): Promise<{ id: string; bytes: number }> {
  const { execFile } = await import("node:child_process");
  return await new Promise((resolve, reject) => {
    execFile(
      "curl",
      ["-sS", "--fail-with-body", "-F", `purpose=${purpose}`, "-F", `file=@${path}`, `${baseUrl}/files`],
      { maxBuffer: 1 << 20 },
      (error, stdout, stderr) => (error ? reject(new Error(`curl: ${stderr || stdout}`)) : resolve(JSON.parse(stdout))),
    );
  });
}

/** Starts the server with `args` and times process start to `/health` ok; `stop` kills it. */
export async function timeToHealthy(args: string[]): Promise<{ ms: number; stop: () => Promise<void> }> {
  const started = performance.now();
  const { startServer } = await import("../tests/support/server.ts");
  const { currentRuntime } = await import("../src/runtime/detect.ts");
  const server = await startServer(args, {}, { fromBuild: currentRuntime() === "node" });
  for (;;) {
    const response = await fetch(`http://127.0.0.1:${server.port}/health`).catch(() => null);
    if (response?.status === 200) break;
    await response?.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return { ms: performance.now() - started, stop: () => server.kill() };
}

/**
 * Runs a batch of `input` (of `lines` lines) on a server started with
 * `args` and kills it (SIGKILL) once about half is done and a checkpoint
 * (written every second) covers that; returns how many lines had finished.
 */
export async function killHalfWay(args: string[], input: string, lines: number): Promise<number> {
  const { createApiClient } = await import("../src/client/api_client.ts");
  const server = await startBenchServer(args);
  const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
  const file = await api.uploadFile(input, "batch");
  const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const atKill = await pollBatch(server.baseURL, batch.id, (b) => b.request_counts.completed >= lines / 2, 50);
  await new Promise((resolve) => setTimeout(resolve, 1200)); // a checkpoint is at most 1 s old
  await server.kill();
  return atKill.request_counts.completed;
}
