/**
 * The server as a container's entrypoint: pid 1 of its own pid namespace, the
 * same host name after a restart. Killed with SIGKILL (an OOM kill), it must
 * start again on the same data directory and resume its batch.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { line } from "../support/engine.ts";
import { eventually, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";
import { startUpstream } from "../support/upstream.ts";

/** Whether `unshare` can make a pid namespace here (it needs root on Linux). */
function canUnshare(): boolean {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return false;
  return spawnSync("unshare", ["--pid", "--fork", "--mount-proc", "true"]).status === 0;
}

test("container restart: pid 1 killed with SIGKILL starts again on its data directory and finishes its batch", async (t) => {
  if (!canUnshare()) return t.skip("needs root and unshare(1) on Linux to run the server as pid 1 of a pid namespace");
  const upstream = await startUpstream();
  const dir = await tempDir();
  const wrapper = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--"];
  const args = ["--upstream", upstream.baseUrl, "--data", dir, "--concurrency", "4", "--lock-stale-after", "3"];
  let server = await startServer(args, {}, { wrapper });
  try {
    await server.waitFor(/ready/);
    let client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const ids = Array.from({ length: 200 }, (_, i) => `req-${i}`);
    const content = new TextEncoder().encode(ids.map((id) => line(id, "slow:20")).join("\n"));
    const file = await client.files.create({ file: await toFile(content, "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await eventually(async () => (await client.batches.retrieve(batch.id)).request_counts!.completed >= 10);
    await server.kill();
    // Started the same way: pid 1 again, the same host name; the lock names pid 1 and is not refreshed any more.
    server = await startServer(args, {}, { wrapper });
    await server.waitFor(/ready/, 30_000);
    assert.match(server.output(), /names process 1 on .*waiting up to \d+ s/);
    client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const done = await eventually(async () => {
      const b = await client.batches.retrieve(batch.id);
      return b.status === "completed" && b;
    }, 60_000);
    const output = (await (await client.files.content(done.output_file_id!)).text()).split("\n").filter(Boolean);
    assert.deepEqual(output.map((text) => JSON.parse(text).custom_id).sort(), [...ids].sort());
  } finally {
    await server.stop();
    await upstream.close();
    await removeDir(dir);
  }
});
