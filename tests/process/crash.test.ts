/**
 * The crash test: the real server as a child process on this runtime, a batch
 * submitted with the openai SDK against a slow local upstream, SIGKILL at random
 * moments, restart on the same data directory, and exactly-once results.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { line } from "../support/engine.ts";
import { eventually, type ServerProcess, startServer } from "../support/server.ts";
import { ADAPTERS } from "../support/adapters.ts";
import { startUpstream } from "../support/upstream.ts";

const LINES = 800;
const KILLS = 3;

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: crash: ${KILLS} SIGKILLs at random moments, and every custom_id still appears exactly once`, () =>
    adapter.withPlace((place) => crashAndCheck(place.serveArgs)));
}

async function crashAndCheck(storageArgs: string[]): Promise<void> {
  const upstream = await startUpstream();
  const args = ["--upstream", upstream.baseUrl, ...storageArgs, "--concurrency", "4", "--checkpoint-interval", "1"];
  let server: ServerProcess = await startServer(args);
  const kills: string[] = [];
  try {
    await server.waitFor(/ready/);
    let client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const ids = Array.from({ length: LINES }, (_, i) => `req-${i}`);
    const content = new TextEncoder().encode(ids.map((id) => line(id, "slow:20")).join("\n"));
    const file = await client.files.create({ file: await toFile(content, "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    for (let kill = 1; kill <= KILLS; kill++) {
      const delay = 150 + Math.floor(Math.random() * 500);
      await new Promise((resolve) => setTimeout(resolve, delay));
      const before = await client.batches.retrieve(batch.id);
      await server.kill();
      kills.push(`kill ${kill} after ${delay} ms at ${before.status} ${JSON.stringify(before.request_counts)}`);
      server = await startServer(args);
      await server.waitFor(/ready/);
      client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    }
    const done = await eventually(async () => {
      const b = await client.batches.retrieve(batch.id);
      return b.status === "completed" && b;
    }, 120_000);
    const read = async (id: string | null | undefined) =>
      id ? (await (await client.files.content(id)).text()).split("\n").filter(Boolean) : [];
    const outputLines = await read(done.output_file_id);
    const errorLines = await read(done.error_file_id);
    const seen = [...outputLines, ...errorLines].map((text) => JSON.parse(text).custom_id as string);
    assert.equal(seen.length, LINES, `no line lost or duplicated (${kills.join("; ")})`);
    assert.deepEqual([...seen].sort(), [...ids].sort());
    assert.deepEqual(done.request_counts, { total: LINES, completed: outputLines.length, failed: errorLines.length });
    assert.equal(errorLines.length, 0);
    assert.ok(upstream.requests.length >= LINES, "requests in flight at a kill are sent again");
    assert.ok(kills.some((k) => k.includes("in_progress")), `at least one kill landed mid-run: ${kills.join("; ")}`);
  } finally {
    await server.stop();
    await upstream.close();
  }
}
