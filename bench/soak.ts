/**
 * The crash soak: hundreds of SIGKILLs of the real server while batches run
 * against a slow local upstream, a restart on the same data directory after
 * each, and a check of every batch that completes: every custom_id exactly
 * once across its output and error files, no torn line, counts equal to the
 * files' line counts.
 *
 * Of every ten interruptions, one is a freeze instead of a kill (`--freezes`
 * sets how many in all): the server gets SIGSTOP, a second server starts on
 * the same state (taking the data directory over once the frozen one's lock
 * is stale, or the frozen node's slices once their leases lapse), and once the
 * second has made progress the first gets SIGCONT. A woken fs server must stop
 * writing nothing; a woken cluster node goes on as a node until it is killed.
 *
 * Usage: <runtime> bench/soak.ts [--kills 200] [--freezes 20] [--lines 2000] [--database postgres://…]
 * (npm run soak -- --kills 200 runs it on Node, from the npm build). With
 * `--database` the server keeps its state in PostgreSQL, in a schema of its
 * own that is dropped at the end.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import process from "node:process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BatchObject } from "../src/batch/model/objects.ts";
import { createApiClient } from "../src/client/api_client.ts";
import { currentRuntime } from "../src/runtime/detect.ts";
import { type ServerProcess, startServer } from "../tests/support/server.ts";
import { report, startBenchUpstream } from "./_lib.ts";

const arg = (name: string, fallback: number) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback;
const KILLS = arg("--kills", 200);
const FREEZES = arg("--freezes", Math.floor(KILLS / 10));
const LINES = arg("--lines", 2000);
const database = process.argv.includes("--database") ? process.argv[process.argv.indexOf("--database") + 1] : undefined;
const schema = `soak_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;

const upstream = await startBenchUpstream(5);
const dir = await mkdtemp(join(tmpdir(), "bench-soak-"));
const place = database ? ["--database", database, "--database-schema", schema] : ["--data", join(dir, "data")];
// Short lock and lease intervals, so that a freeze's takeover comes within seconds.
const takeover = database ? ["--lease-seconds", "2"] : ["--lock-stale-after", "2"];
const args = ["--upstream", upstream.baseUrl, ...place, "--concurrency", "8", "--checkpoint-interval", "1", ...takeover];
const start = async (): Promise<ServerProcess> => {
  const server = await startServer(args, {}, { fromBuild: currentRuntime() === "node" });
  await server.waitFor(/ready/);
  return server;
};

const stats = {
  kills: 0,
  freezes: 0,
  woken_servers_that_stopped: 0,
  batches_verified: 0,
  results_verified: 0,
  lost: 0,
  duplicated: 0,
  torn_lines: 0,
  count_mismatches: 0,
  kills_by_status: {} as Record<string, number>,
};
let batchNumber = 0;
const state: { current: { id: string; ids: Set<string> } | null } = { current: null };

async function verify(api: ReturnType<typeof createApiClient>, batch: BatchObject, ids: Set<string>) {
  const lines: string[] = [];
  for (const fileId of [batch.output_file_id, batch.error_file_id]) {
    if (!fileId) continue;
    const text = await new Response(await api.fileContent(fileId)).text();
    lines.push(...text.split("\n").filter(Boolean));
  }
  const seen = new Map<string, number>();
  for (const line of lines) {
    try {
      const id = JSON.parse(line).custom_id as string;
      seen.set(id, (seen.get(id) ?? 0) + 1);
    } catch {
      stats.torn_lines++;
    }
  }
  for (const id of ids) {
    const n = seen.get(id) ?? 0;
    if (n === 0) stats.lost++;
    if (n > 1) stats.duplicated += n - 1;
  }
  const { total, completed, failed } = batch.request_counts;
  if (total !== ids.size || completed + failed !== lines.length) stats.count_mismatches++;
  stats.batches_verified++;
  stats.results_verified += lines.length;
}

async function submitNext(api: ReturnType<typeof createApiClient>) {
  batchNumber++;
  const ids = new Set(Array.from({ length: LINES }, (_, i) => `b${batchNumber}-${i}`));
  const input = join(dir, `in-${batchNumber}.jsonl`);
  const body = { model: "soak", messages: [{ role: "user", content: "hello" }] };
  await writeFile(input, [...ids].map((id) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body })).join("\n"));
  const file = await api.uploadFile(input, "batch");
  const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  state.current = { id: batch.id, ids };
}

const started = performance.now();
let server = await start();
while (stats.kills < KILLS) {
  const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
  const current = state.current;
  if (current) {
    const batch = await api.retrieveBatch(current.id);
    if (batch.status === "completed") {
      await verify(api, batch, current.ids);
      state.current = null;
    } else if (batch.status !== "validating" && batch.status !== "in_progress" && batch.status !== "finalizing") {
      throw new Error(`batch ${batch.id} ended ${batch.status}`);
    }
  }
  if (!state.current) await submitNext(api);
  await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 600));
  const status = (await api.retrieveBatch(state.current!.id)).status;
  const interruption = stats.kills + stats.freezes + 1;
  if (FREEZES > 0 && interruption % Math.max(1, Math.floor((KILLS + FREEZES) / FREEZES)) === 0 && stats.freezes < FREEZES) {
    server = await freezeAndTakeOver(server, state.current!.id);
    stats.freezes++;
  } else {
    await server.kill();
    stats.kills++;
    server = await start();
  }
  stats.kills_by_status[status] = (stats.kills_by_status[status] ?? 0) + 1;
  if (interruption % 25 === 0) console.error(`${stats.kills} kills, ${stats.freezes} freezes, ${stats.batches_verified} batches verified`);
}

/**
 * SIGSTOP of `frozen`, a second server on the same state, SIGCONT of the
 * first once the second made progress on `batchId` (or the batch ended):
 * resolves with the second, the first stopped.
 */
async function freezeAndTakeOver(frozen: ServerProcess, batchId: string): Promise<ServerProcess> {
  process.kill(frozen.child.pid!, "SIGSTOP");
  const second = await start();
  const api = createApiClient({ baseUrl: second.baseURL, apiKey: undefined });
  const before = (await api.retrieveBatch(batchId)).request_counts.completed;
  for (;;) {
    const batch = await api.retrieveBatch(batchId);
    if (batch.request_counts.completed > before || !["validating", "in_progress", "finalizing"].includes(batch.status)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  process.kill(frozen.child.pid!, "SIGCONT");
  if (database) {
    await frozen.kill(); // a woken node is a node like any other
  } else {
    const code = await frozen.exited;
    if (code === 1 && frozen.output().includes("lost the data directory")) stats.woken_servers_that_stopped++;
  }
  return second;
}
const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
for (;;) {
  const batch = await api.retrieveBatch(state.current!.id);
  if (batch.status === "completed") {
    await verify(api, batch, state.current!.ids);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
await server.stop();
await upstream.stop();
await rm(dir, { recursive: true, force: true });
if (database) {
  const { default: postgres } = await import("postgres");
  const admin = postgres(database, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop schema if exists "${schema}" cascade`);
  await admin.end();
}
report("soak", {
  storage: database ? "postgres" : "fs",
  ...stats,
  lines_per_batch: LINES,
  minutes: Number(((performance.now() - started) / 60_000).toFixed(1)),
  pass: stats.lost === 0 && stats.duplicated === 0 && stats.torn_lines === 0 && stats.count_mismatches === 0 &&
    (database !== undefined || stats.woken_servers_that_stopped === stats.freezes),
});
