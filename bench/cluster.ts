/**
 * Benchmark 10 — several nodes on one PostgreSQL database:
 * - lines/s of one 40,000-line batch for 1, 2 and 4 nodes (`--concurrency 32`
 *   each) against an upstream that answers after 50 ms, beside the linear
 *   ideal (nodes × 32 ÷ 0.05 s): while its lines run (10 % to 90 % of them
 *   finished; bar: ≥ 0.9 of linear at 4 nodes), and from create to completed
 *   (with validation, slicing and finalizing, which do not scale with nodes);
 * - one node on PostgreSQL against one server on fs, same batch and latency;
 * - takeover: from a node's SIGKILL, and from its SIGSTOP (its lease must
 *   lapse: `--lease-seconds 5`), until every slice it held is held by
 *   another node or done.
 *
 * The database is BATCHSPOOL_BENCH_DATABASE_URL (`npm run bench` starts an
 * embedded one when it is not set); every run uses a schema of its own.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import postgres from "postgres";
import { createApiClient } from "../src/client/api_client.ts";
import type { ServerProcess } from "../tests/support/server.ts";
import { median, pollBatch, report, runsArg, startBenchServer, startBenchUpstream, writeJsonl } from "./_lib.ts";

const url = process.env.BATCHSPOOL_BENCH_DATABASE_URL;
if (!url) throw new Error("set BATCHSPOOL_BENCH_DATABASE_URL (npm run bench starts a PostgreSQL when it is not set)");
const admin = postgres(url, { max: 1, onnotice: () => {} });
const schemaName = () => `bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;

const LATENCY_MS = 50;
const CONCURRENCY = 32;
const LINES = 40_000;
const runs = runsArg(1);
const dir = await mkdtemp(join(tmpdir(), "bench-cluster-"));
const input = join(dir, "in.jsonl");
await writeJsonl(input, LINES, 300);
const upstream = await startBenchUpstream(LATENCY_MS);

/** Starts `n` servers with `args` (the first alone, so it creates the schema). */
async function startNodes(n: number, args: string[]): Promise<ServerProcess[]> {
  const first = await startBenchServer(args);
  const rest = await Promise.all(Array.from({ length: n - 1 }, () => startBenchServer(args)));
  return [first, ...rest];
}

/**
 * Lines per second of one batch of the input through `servers` (created on
 * the first): from create to completed (`endToEnd`, with the batch's
 * validation, slicing and finalizing), and while its lines run (`running`,
 * from 10 % to 90 % of them finished).
 */
async function timeBatch(servers: ServerProcess[]): Promise<{ endToEnd: number; running: number }> {
  const api = createApiClient({ baseUrl: servers[0].baseURL, apiKey: undefined });
  const file = await api.uploadFile(input, "batch");
  const started = performance.now();
  const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  let tenth = 0;
  let ninetieth = 0;
  const done = await pollBatch(servers[servers.length - 1].baseURL, batch.id, (b) => {
    const now = performance.now();
    if (!tenth && b.request_counts.completed >= LINES * 0.1) tenth = now;
    if (!ninetieth && b.request_counts.completed >= LINES * 0.9) ninetieth = now;
    return ["completed", "failed"].includes(b.status);
  }, 20);
  if (done.status !== "completed" || done.request_counts.completed !== LINES) throw new Error(JSON.stringify(done));
  return { endToEnd: LINES / ((performance.now() - started) / 1000), running: (LINES * 0.8) / ((ninetieth - tenth) / 1000) };
}

const clusterArgs = (schema: string, extra: string[] = []) =>
  ["--upstream", upstream.baseUrl, "--concurrency", String(CONCURRENCY), "--database", url!, "--database-schema", schema, ...extra];

async function withNodes<T>(n: number, extra: string[], body: (servers: ServerProcess[]) => Promise<T>): Promise<T> {
  const schema = schemaName();
  const servers = await startNodes(n, clusterArgs(schema, extra));
  try {
    return await body(servers);
  } finally {
    for (const server of servers) {
      try {
        process.kill(server.child.pid!, "SIGCONT");
      } catch { /* gone */ }
      await server.kill();
    }
    await admin.unsafe(`drop schema if exists "${schema}" cascade`);
  }
}

// Scaling: 1, 2 and 4 nodes, and one fs server.
const scaling: Record<string, { endToEnd: number; running: number }[]> = { 1: [], 2: [], 4: [] };
const onFs: { endToEnd: number; running: number }[] = [];
for (let i = 0; i < runs; i++) {
  const fsDir = await mkdtemp(join(tmpdir(), "bench-cluster-fs-"));
  const fsServer = await startBenchServer(["--upstream", upstream.baseUrl, "--concurrency", String(CONCURRENCY), "--data", fsDir]);
  onFs.push(await timeBatch([fsServer]));
  await fsServer.kill();
  await rm(fsDir, { recursive: true, force: true });
  for (const n of [1, 2, 4]) scaling[n].push(await withNodes(n, [], timeBatch));
}
const rate = (n: number, kind: "endToEnd" | "running") => median(scaling[n].map((r) => r[kind]));
const fsRate = (kind: "endToEnd" | "running") => median(onFs.map((r) => r[kind]));
const ideal = (n: number) => (n * CONCURRENCY * 1000) / LATENCY_MS;
const ofLinear = (kind: "endToEnd" | "running") =>
  Object.fromEntries([1, 2, 4].map((n) => [n, Number((rate(n, kind) / ideal(n)).toFixed(3))]));

interface ClusterView {
  nodes: { node_id: string; work: { batch_id: string; kind: string; item: number }[] }[];
}
const view = async (server: ServerProcess): Promise<ClusterView> =>
  await (await fetch(`http://127.0.0.1:${server.port}/cluster`)).json();
const nodeIdOf = async (server: ServerProcess) => (await (await fetch(`http://127.0.0.1:${server.port}/health`)).json()).node_id;

/** Milliseconds from `act` on the last node until each slice it held is held by another node or done. */
async function takeover(act: (victim: ServerProcess) => Promise<void>, extra: string[]): Promise<number> {
  return await withNodes(3, extra, async (servers) => {
    const api = createApiClient({ baseUrl: servers[0].baseURL, apiKey: undefined });
    const file = await api.uploadFile(input, "batch");
    await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const victim = servers[2];
    const victimId = await nodeIdOf(victim);
    const slicesOf = (v: ClusterView, id: string) =>
      v.nodes.find((n) => n.node_id === id)?.work.filter((w) => w.kind === "slice").map((w) => `${w.batch_id}/${w.item}`) ?? [];
    let held: string[] = [];
    while (!held.length) held = slicesOf(await view(servers[0]), victimId);
    const started = performance.now();
    await act(victim);
    for (;;) {
      const v = await view(servers[0]);
      const elsewhere = new Set(v.nodes.filter((n) => n.node_id !== victimId).flatMap((n) => slicesOf(v, n.node_id)));
      const still = slicesOf(v, victimId);
      if (held.every((item) => !still.includes(item) || elsewhere.has(item))) return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
}
const kills: number[] = [];
const stops: number[] = [];
for (let i = 0; i < runs; i++) {
  kills.push(await takeover((victim) => victim.kill(), []));
  stops.push(await takeover(async (victim) => void process.kill(victim.child.pid!, "SIGSTOP"), ["--lease-seconds", "5"]));
}

await upstream.stop();
await admin.end();
await rm(dir, { recursive: true, force: true });

const ratio4 = rate(4, "running") / ideal(4);
report("cluster", {
  lines: LINES,
  latency_ms: LATENCY_MS,
  concurrency_per_node: CONCURRENCY,
  running_lines_per_s: Object.fromEntries([1, 2, 4].map((n) => [n, Math.round(rate(n, "running"))])),
  running_of_linear: ofLinear("running"),
  end_to_end_lines_per_s: Object.fromEntries([1, 2, 4].map((n) => [n, Math.round(rate(n, "endToEnd"))])),
  end_to_end_of_linear: ofLinear("endToEnd"),
  fs_single_running_lines_per_s: Math.round(fsRate("running")),
  postgres_node_vs_fs_running: Number((rate(1, "running") / fsRate("running")).toFixed(3)),
  postgres_node_vs_fs_end_to_end: Number((rate(1, "endToEnd") / fsRate("endToEnd")).toFixed(3)),
  takeover_after_sigkill_ms: Math.round(median(kills)),
  takeover_after_sigstop_ms_lease_5s: Math.round(median(stops)),
  bar: "4 nodes ≥ 0.9 of linear while the lines run",
  pass: ratio4 >= 0.9,
  runs: { scaling, fs: onFs, kills: kills.map(Math.round), stops: stops.map(Math.round) },
});
