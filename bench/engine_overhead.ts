/**
 * Benchmark 1 — engine overhead: lines per second from batch creation to
 * `completed` for a 50,000-line chat batch against an in-process target that
 * answers at once, on the fs store with full durability (validation, dispatch,
 * group-committed appends, finalization with hashing all included).
 *
 * The floor: a plain loop that reads the same JSONL, parses each line, builds
 * the result record, and appends the records of each chunk of input (about
 * 800 lines) to a log of the same store with one durable append — the same
 * group commit, at its most efficient. Bar: engine ÷ floor ≥ 0.5.
 *
 * The target for the bar implements the `Target` interface directly, so the
 * figure is the engine's own cost. A second figure uses `createInProcessTarget`
 * with a fetch handler, which adds the runtime's `Request`/`Response` cost
 * (large on Node).
 */
import { join } from "node:path";
import { readLines } from "../src/batch/input/line_splitter.ts";
import { responseRecord } from "../src/engine/lines/result_records.ts";
import { createInProcessTarget } from "../src/targets/in_process.ts";
import type { Target } from "../src/targets/types.ts";
import { createFsStorage } from "../src/storage/fs/fs_storage.ts";
import { median, pairedRatio, report, runsArg, timeBatchInProcess, writeJsonl } from "./_lib.ts";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { fileStream } from "../src/storage/fs/paths.ts";
import { tmpdir } from "node:os";

const LINES = Number(process.env.BENCH_LINES ?? 50_000);
const CONCURRENCY = 32;
/** The answer of the benchmarks' upstream (bench/chat_answer.json), given at once. */
const ANSWER: Record<string, unknown> = JSON.parse(
  await readFile(new URL("./chat_answer.json", import.meta.url), "utf8"),
);

const directTarget: Target = {
  description: "direct",
  send: async () => ({ status: 200, body: ANSWER, requestId: null, retryAfterMs: null, json: true }),
};

async function floorRun(input: string): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), "bench-floor-"));
  const storage = await createFsStorage({ dir });
  const started = performance.now();
  const stream = fileStream(input, 0, (await stat(input)).size);
  for await (const group of readLines(stream)) {
    const records = group.map(({ line, text }) => {
      const request = JSON.parse(text!);
      return responseRecord(line, request.custom_id, { status_code: 200, request_id: null, body: ANSWER });
    });
    await storage.logs.append("floor/out", records);
  }
  const seconds = (performance.now() - started) / 1000;
  await storage.close();
  await rm(dir, { recursive: true, force: true });
  return LINES / seconds;
}

const dir = await mkdtemp(join(tmpdir(), "bench-input-"));
const input = join(dir, "in.jsonl");
await writeJsonl(input, LINES, 300);
const runs = runsArg(5);
const engine: number[] = [];
const floor: number[] = [];
const handler: number[] = [];
// One run of each, not counted, so both are measured with their code compiled.
await floorRun(input);
await timeBatchInProcess(directTarget, await readFile(input), CONCURRENCY);
for (let i = 0; i < runs; i++) {
  floor.push(await floorRun(input));
  const content = await readFile(input);
  engine.push(await timeBatchInProcess(directTarget, content, CONCURRENCY));
  handler.push(await timeBatchInProcess(createInProcessTarget(() => Response.json(ANSWER)), content, CONCURRENCY));
}
await rm(dir, { recursive: true, force: true });
const ratio = pairedRatio(engine, floor);
report("engine_overhead", {
  lines: LINES,
  engine_lines_per_s: Math.round(median(engine)),
  floor_lines_per_s: Math.round(median(floor)),
  ratio: Number(ratio.toFixed(3)),
  bar: ">= 0.5",
  pass: ratio >= 0.5,
  fetch_handler_target_lines_per_s: Math.round(median(handler)),
  runs: { engine: engine.map(Math.round), floor: floor.map(Math.round), fetch_handler: handler.map(Math.round) },
});
