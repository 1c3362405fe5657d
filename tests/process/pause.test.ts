/**
 * Pause and resume across a SIGKILL, on both storages: the real server as a
 * child process, the batch created with the unchanged openai SDK (its
 * priority as metadata), paused and resumed with the CLI.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { typeScriptCommand } from "../../src/runtime/detect.ts";
import { ADAPTERS } from "../support/adapters.ts";
import { line } from "../support/engine.ts";
import { CLI, eventually, type ServerProcess, startServer } from "../support/server.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, commandArgs] = typeScriptCommand(CLI, args);
  const child = spawn(command, commandArgs, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

const sentOf = (upstream: Upstream, prefix: string) => upstream.requests.filter((request) => request.prompt.startsWith(prefix));

async function submit(client: OpenAI, ids: string[], model: string, metadata?: Record<string, string>) {
  const content = new TextEncoder().encode(ids.map((id) => line(id, model)).join("\n"));
  const file = await client.files.create({ file: await toFile(content, "in.jsonl"), purpose: "batch" });
  return await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata });
}

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: pause: a paused batch stays paused through a SIGKILL, sends nothing, and resumes to every line once`, () =>
    adapter.withPlace(async (place) => {
      const upstream = await startUpstream();
      const args = ["--upstream", upstream.baseUrl, ...place.serveArgs, "--concurrency", "2", "--lease-seconds", "2"];
      let server: ServerProcess = await startServer(args);
      try {
        await server.waitFor(/ready/);
        let client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
        const ids = Array.from({ length: 60 }, (_, i) => `p-${i}`);
        const batch = await submit(client, ids, "slow:250", { priority: "5" });
        assert.equal((batch as unknown as { priority: number }).priority, 5);
        await eventually(async () => sentOf(upstream, "p-").length >= 4);

        const paused = await runCli(["pause", batch.id, "--base-url", server.baseURL]);
        assert.equal(paused.code, 0, paused.stderr);
        assert.match(paused.stdout, /in_progress \(paused since /);
        // Requests in flight finish and are recorded; then nothing more is sent.
        const settled = await eventually(async () => {
          const b = await client.batches.retrieve(batch.id);
          return b.request_counts!.completed === sentOf(upstream, "p-").length && b;
        });
        const sentBeforeKill = sentOf(upstream, "p-").length;
        assert.ok(sentBeforeKill < ids.length);

        await server.kill();
        server = await startServer(args);
        await server.waitFor(/ready/);
        client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
        const after = await client.batches.retrieve(batch.id) as unknown as { paused_at: number | null; status: string };
        assert.equal(after.status, "in_progress");
        assert.equal(typeof after.paused_at, "number");
        // Another batch runs to its end on the restarted server: the paused one still sends nothing.
        const other = await submit(client, Array.from({ length: 10 }, (_, i) => `q-${i}`), "ok");
        await eventually(async () => (await client.batches.retrieve(other.id)).status === "completed", 60_000);
        assert.equal(sentOf(upstream, "p-").length, sentBeforeKill, "still paused after the SIGKILL");
        assert.equal((await client.batches.retrieve(batch.id)).request_counts!.completed, settled.request_counts!.completed);

        const resumed = await runCli(["resume", batch.id, "--base-url", server.baseURL]);
        assert.equal(resumed.code, 0, resumed.stderr);
        const done = await eventually(async () => {
          const b = await client.batches.retrieve(batch.id);
          return b.status === "completed" && b;
        }, 120_000);
        const output = (await (await client.files.content(done.output_file_id!)).text()).split("\n").filter(Boolean);
        assert.deepEqual(output.map((text) => JSON.parse(text).custom_id).sort(), [...ids].sort());
        assert.equal(sentOf(upstream, "p-").length, ids.length, "no line was sent twice");
      } finally {
        await server.stop();
        await upstream.close();
      }
    }));
}
