/**
 * Benchmark 5 — recovery: time from process start to `/health` ok with a
 * 50,000-line batch killed (SIGKILL) about half way, with a valid checkpoint
 * and without one (checkpoints deleted: a full scan of the logs).
 * Bar: under 1 s with a checkpoint.
 */
import { readdir, rm } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFolderOf } from "../src/storage/fs/fs_storage.ts";
import { killHalfWay, median, report, runsArg, timeToHealthy, writeJsonl } from "./_lib.ts";

const LINES = 50_000;

const dir = await mkdtemp(join(tmpdir(), "bench-recovery-"));
const data = join(dir, "data");
const input = join(dir, "in.jsonl");
await writeJsonl(input, LINES, 300);
const args = ["--upstream", "mock", "--mock-latency", "2", "--concurrency", "8", "--checkpoint-interval", "1", "--data", data];
const finishedAtKill = await killHalfWay(args, input, LINES);

const runs = runsArg(3);
const withCheckpoint: number[] = [];
const withoutCheckpoint: number[] = [];
for (let i = 0; i < runs; i++) {
  const warm = await timeToHealthy(args);
  withCheckpoint.push(warm.ms);
  await warm.stop();
  const checkpoints = join(await dataFolderOf(data), "docs", "checkpoints");
  for (const name of await readdir(checkpoints)) await rm(join(checkpoints, name), { force: true });
  const cold = await timeToHealthy(args);
  withoutCheckpoint.push(cold.ms);
  await cold.stop();
}
await rm(dir, { recursive: true, force: true });
report("recovery", {
  lines: LINES,
  finished_at_kill: finishedAtKill,
  with_checkpoint_ms: Math.round(median(withCheckpoint)),
  without_checkpoint_ms: Math.round(median(withoutCheckpoint)),
  bar: "< 1000 ms with a checkpoint",
  pass: median(withCheckpoint) < 1000,
  runs: { with: withCheckpoint.map(Math.round), without: withoutCheckpoint.map(Math.round) },
});
