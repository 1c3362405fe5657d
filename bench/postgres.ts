/**
 * Benchmark 9 — PostgreSQL storage, beside the fs figures:
 * - engine lines/s for a 50,000-line batch against a target that answers at
 *   once (benchmark 1's), on PostgreSQL and on fs, paired runs; bar: PostgreSQL
 *   ÷ fs ≥ 0.5;
 * - the real server on PostgreSQL: a 200 MB / 50,000-line batch uploaded with
 *   curl (MB/s) and run against the mock target, with its peak RSS; bar < 200 MiB;
 * - restart to ready (process start to `/health` ok) with a 50,000-line batch
 *   killed (SIGKILL) half way, with a checkpoint; bar < 1 s.
 *
 * The database is BATCHSPOOL_BENCH_DATABASE_URL (`npm run bench` starts an
 * embedded one when it is not set); every run uses a schema of its own.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { createApiClient } from "../src/client/api_client.ts";
import { createPostgresStorage } from "../src/storage/postgres/postgres_storage.ts";
import type { Target } from "../src/targets/types.ts";
import {
  curlUpload,
  killHalfWay,
  median,
  memoryOf,
  pairedRatio,
  pollBatch,
  report,
  runsArg,
  startBenchServer,
  timeBatchInProcess,
  timeToHealthy,
  writeJsonl,
} from "./_lib.ts";

const url = process.env.BATCHSPOOL_BENCH_DATABASE_URL;
if (!url) throw new Error("set BATCHSPOOL_BENCH_DATABASE_URL (npm run bench starts a PostgreSQL when it is not set)");
const admin = postgres(url, { max: 1, onnotice: () => {} });
const schemaName = () => `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
const dropSchema = (schema: string) => admin.unsafe(`drop schema if exists "${schema}" cascade`);

const ANSWER: Record<string, unknown> = JSON.parse(await readFile(new URL("./chat_answer.json", import.meta.url), "utf8"));
const directTarget: Target = {
  description: "direct",
  send: async () => ({ status: 200, body: ANSWER, requestId: null, retryAfterMs: null, json: true }),
};
const LINES = 50_000;

const dir = await mkdtemp(join(tmpdir(), "bench-postgres-"));
const runs = runsArg(3);

// Engine on PostgreSQL against the same engine on fs, paired.
const engineInput = join(dir, "engine.jsonl");
await writeJsonl(engineInput, LINES, 300);
const content = await readFile(engineInput);
const openPostgres = async () => {
  const schema = schemaName();
  const storage = await createPostgresStorage({ url, schema });
  return { ...storage, kind: storage.kind, dispose: () => dropSchema(schema).then(() => {}) };
};
await timeBatchInProcess(directTarget, content, 32, openPostgres); // warm-up, not counted
const onFs: number[] = [];
const onPostgres: number[] = [];
for (let i = 0; i < runs; i++) {
  onFs.push(await timeBatchInProcess(directTarget, content, 32));
  onPostgres.push(await timeBatchInProcess(directTarget, content, 32, openPostgres));
}
const engineRatio = pairedRatio(onPostgres, onFs);

// The real server on PostgreSQL: a 200 MB upload and its batch, with the server's peak RSS.
const bigInput = join(dir, "big.jsonl");
await writeJsonl(bigInput, LINES, 4000);
const uploads: number[] = [];
const peaks: number[] = [];
for (let i = 0; i < runs; i++) {
  const schema = schemaName();
  const server = await startBenchServer(["--upstream", "mock", "--database", url, "--database-schema", schema]);
  const pid = server.child.pid!;
  let sampled = 0;
  const sampler = setInterval(() => memoryOf(pid).then((m) => (sampled = Math.max(sampled, m.rssMiB)), () => {}), 50);
  const started = performance.now();
  const file = await curlUpload(server.baseURL, bigInput, "batch");
  uploads.push(file.bytes / 1e6 / ((performance.now() - started) / 1000));
  const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
  const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  const done = await pollBatch(server.baseURL, batch.id, (b) => ["completed", "failed"].includes(b.status), 100);
  if (done.status !== "completed" || done.request_counts.completed !== LINES) throw new Error(JSON.stringify(done));
  clearInterval(sampler);
  peaks.push(Math.max(sampled, (await memoryOf(pid)).peakMiB));
  await server.stop();
  await dropSchema(schema);
}

// Restart to ready with a half-done 50,000-line batch.
const recoverySchema = schemaName();
const args = ["--upstream", "mock", "--mock-latency", "2", "--concurrency", "8", "--checkpoint-interval", "1",
  "--database", url, "--database-schema", recoverySchema];
const finishedAtKill = await killHalfWay(args, engineInput, LINES);
const restarts: number[] = [];
for (let i = 0; i < runs; i++) {
  const restarted = await timeToHealthy(args);
  restarts.push(restarted.ms);
  await restarted.stop();
}
await dropSchema(recoverySchema);
await admin.end();
await rm(dir, { recursive: true, force: true });

const peak = median(peaks);
const restart = median(restarts);
report("postgres", {
  lines: LINES,
  engine_fs_lines_per_s: Math.round(median(onFs)),
  engine_postgres_lines_per_s: Math.round(median(onPostgres)),
  engine_ratio: Number(engineRatio.toFixed(3)),
  upload_200mb_mb_per_s: Number(median(uploads).toFixed(1)),
  peak_rss_mib: Math.round(peak),
  finished_at_kill: finishedAtKill,
  restart_to_ready_ms: Math.round(restart),
  bar: "engine ÷ fs ≥ 0.5; peak RSS < 200 MiB; restart < 1000 ms",
  pass: engineRatio >= 0.5 && peak < 200 && restart < 1000,
  runs: { fs: onFs.map(Math.round), postgres: onPostgres.map(Math.round), uploads, peaks, restarts: restarts.map(Math.round) },
});
