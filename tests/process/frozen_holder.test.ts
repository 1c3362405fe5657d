/**
 * A server frozen mid-batch (SIGSTOP, as a paused VM or `docker pause` freezes
 * it), a second server that takes its data directory over meanwhile, and the
 * first one woken while the second runs the batch: every custom_id appears
 * exactly once in the results, with no torn line, and the woken server stops.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { line } from "../support/engine.ts";
import { eventually, type ServerProcess, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";
import { startUpstream } from "../support/upstream.ts";

const LINES = 6_000;
const ROUNDS = 3;

test(`frozen holder: ${ROUNDS} rounds of SIGSTOP mid-batch, a takeover, then SIGCONT: every custom_id once, no torn line`, async () => {
  const upstream = await startUpstream();
  try {
    for (let round = 1; round <= ROUNDS; round++) await freezeTakeOverWake(upstream.baseUrl, round);
  } finally {
    await upstream.close();
  }
});

async function freezeTakeOverWake(upstreamUrl: string, round: number): Promise<void> {
  const dir = await tempDir();
  const args = ["--upstream", upstreamUrl, "--data", join(dir, "data"), "--lock-stale-after", "3", "--concurrency", "32"];
  const servers: ServerProcess[] = [];
  try {
    const first = await startServer(args);
    servers.push(first);
    await first.waitFor(/ready/);
    const client = (server: ServerProcess) => new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const ids = Array.from({ length: LINES }, (_, i) => `r${round}-${i}`);
    const content = new TextEncoder().encode(ids.map((id) => line(id, "slow:15")).join("\n") + "\n");
    const file = await client(first).files.create({ file: await toFile(content, "in.jsonl"), purpose: "batch" });
    const batch = await client(first).batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    // Frozen once about a sixth of the lines are done, with requests in flight.
    await eventually(async () => (await client(first).batches.retrieve(batch.id)).request_counts!.completed >= 1_000, 60_000, 10);
    process.kill(first.child.pid!, "SIGSTOP");
    const second = await startServer(args);
    servers.push(second);
    await second.waitFor(/ready/);
    // Woken while the second server runs the batch: its answers in flight arrive, and it writes them.
    const progressed = (await client(second).batches.retrieve(batch.id)).request_counts!.completed;
    await eventually(async () => (await client(second).batches.retrieve(batch.id)).request_counts!.completed > progressed, 60_000, 10);
    process.kill(first.child.pid!, "SIGCONT");
    assert.equal(await first.exited, 1, `the woken server stops: ${first.output()}`);
    assert.match(first.output(), /lost the data directory/);
    const done = await eventually(async () => {
      const b = await client(second).batches.retrieve(batch.id);
      return b.status === "completed" && b;
    }, 120_000);
    const text = async (id: string | null | undefined) => id ? await (await client(second).files.content(id)).text() : "";
    const lines = [...(await text(done.output_file_id)).split("\n"), ...(await text(done.error_file_id)).split("\n")].filter(Boolean);
    const seen = lines.map((record) => {
      try {
        return JSON.parse(record).custom_id as string;
      } catch {
        assert.fail(`round ${round}: a torn line in the results: ${record.slice(0, 200)}`);
      }
    });
    assert.equal(new Set(seen).size, seen.length, `round ${round}: no custom_id twice`);
    assert.deepEqual([...seen].sort(), [...ids].sort(), `round ${round}: every custom_id`);
    assert.deepEqual(done.request_counts, { total: LINES, completed: LINES, failed: 0 });
  } finally {
    for (const server of servers) {
      try {
        process.kill(server.child.pid!, "SIGCONT");
      } catch {
        // exited
      }
      await server.kill();
    }
    await removeDir(dir);
  }
}
