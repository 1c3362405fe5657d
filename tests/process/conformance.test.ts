/**
 * Conformance: the real server as a child process on this runtime, driven by the
 * official `openai` SDK exactly as a user's code would drive OpenAI.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { currentRuntime } from "../../src/runtime/detect.ts";
import { chatLine } from "../support/app.ts";
import { eventually, type ServerProcess, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

async function withServer(args: string[], body: (server: ServerProcess) => Promise<void>) {
  const dir = await tempDir();
  const server = await startServer(["--data", dir, ...args]);
  try {
    await server.waitFor(/ready/);
    await body(server);
  } finally {
    const code = await server.stop();
    await removeDir(dir);
    assert.match(server.output(), /SIGTERM: shutting down\n(.*\n)*stopped\n$/, "a graceful shutdown");
    // Deno's child_process reports a child it signalled as (null, SIGTERM) even when it exited 0.
    if (currentRuntime() !== "deno") assert.equal(code, 0, `server exit code; it said:\n${server.output()}`);
  }
}

const jsonl = (ids: string[]) => ids.map((id) => chatLine(id)).join("\n") + "\n";

test("conformance: files.create/list/retrieve/content/delete through the openai SDK", () =>
  withServer(["--upstream", "mock", "--api-key", "sk-test"], async (server) => {
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "sk-test", maxRetries: 0 });
    const content = jsonl(["a", "b"]);
    const file = await client.files.create({ file: await toFile(new TextEncoder().encode(content), "in.jsonl"), purpose: "batch" });
    assert.equal(file.object, "file");
    assert.equal(file.bytes, content.length);
    assert.equal(file.filename, "in.jsonl");
    assert.equal(file.purpose, "batch");
    const retrieved = await client.files.retrieve(file.id);
    assert.deepEqual(retrieved, file);
    const listed: string[] = [];
    for await (const f of client.files.list({ purpose: "batch" })) listed.push(f.id);
    assert.deepEqual(listed, [file.id]);
    assert.equal(await (await client.files.content(file.id)).text(), content);
    const deleted = await client.files.delete(file.id);
    assert.deepEqual(deleted, { id: file.id, object: "file", deleted: true });
    await assert.rejects(client.files.retrieve(file.id), OpenAI.NotFoundError);
  }));

test("conformance: batches.create/retrieve/list (auto-paginated)/cancel and result download", () =>
  withServer(["--upstream", "mock", "--mock-latency", "20", "--concurrency", "4"], async (server) => {
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const ids = Array.from({ length: 20 }, (_, i) => `req-${i}`);
    const input = await client.files.create({ file: await toFile(new TextEncoder().encode(jsonl(ids)), "in.jsonl"), purpose: "batch" });
    const created: OpenAI.Batches.Batch[] = [];
    for (let i = 0; i < 3; i++) {
      created.push(await client.batches.create({
        input_file_id: input.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
        metadata: { n: String(i) },
      }));
    }
    assert.equal(created[0].status, "validating");
    const seen: string[] = [];
    for await (const batch of client.batches.list({ limit: 1 })) seen.push(batch.id);
    assert.deepEqual(seen, created.map((b) => b.id).reverse(), "newest first, across pages");

    const cancelled = await client.batches.cancel(created[2].id);
    assert.ok(["cancelling", "cancelled"].includes(cancelled.status));
    const ended = await eventually(async () => {
      const b = await client.batches.retrieve(created[2].id);
      return b.status === "cancelled" && b;
    });
    assert.equal(typeof ended.cancelled_at, "number");
    assert.ok(ended.request_counts!.completed < 20);

    const done = await eventually(async () => {
      const b = await client.batches.retrieve(created[0].id);
      return b.status === "completed" && b;
    });
    assert.deepEqual(done.request_counts, { total: 20, completed: 20, failed: 0 });
    assert.equal(done.metadata?.n, "0");
    const output = await (await client.files.content(done.output_file_id!)).text();
    const customIds = output.trimEnd().split("\n").map((line) => JSON.parse(line).custom_id).sort();
    assert.deepEqual(customIds, [...ids].sort());
    await assert.rejects(client.batches.cancel(done.id), (error) => {
      assert.ok(error instanceof OpenAI.ConflictError);
      assert.equal(error.status, 409);
      return true;
    });
  }));

test("conformance: the SDK raises its typed errors for auth, bad requests and missing objects", () =>
  withServer(["--upstream", "mock", "--api-key", "sk-a", "--api-key", "sk-b"], async (server) => {
    const a = new OpenAI({ baseURL: server.baseURL, apiKey: "sk-a", maxRetries: 0 });
    const b = new OpenAI({ baseURL: server.baseURL, apiKey: "sk-b", maxRetries: 0 });
    const wrong = new OpenAI({ baseURL: server.baseURL, apiKey: "sk-wrong", maxRetries: 0 });
    await assert.rejects(wrong.files.list(), OpenAI.AuthenticationError);
    await assert.rejects(
      a.batches.create({ input_file_id: "file-nope", endpoint: "/v1/chat/completions", completion_window: "24h" }),
      (error) => {
        assert.ok(error instanceof OpenAI.BadRequestError);
        assert.equal(error.param, "input_file_id");
        return true;
      },
    );
    const file = await a.files.create({ file: await toFile(new TextEncoder().encode(jsonl(["x"])), "x.jsonl"), purpose: "batch" });
    await assert.rejects(
      a.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/images/generations" as "/v1/chat/completions",
        completion_window: "24h",
      }),
      (error) => error instanceof OpenAI.BadRequestError && error.param === "endpoint",
    );
    await assert.rejects(b.files.retrieve(file.id), OpenAI.NotFoundError);
    await assert.rejects(b.batches.retrieve(`batch_${"0".repeat(36)}`), OpenAI.NotFoundError);
    const health = await fetch(`http://127.0.0.1:${server.port}/health`);
    const { status, node_id } = await health.json();
    assert.deepEqual([status, typeof node_id], ["ok", "string"], "ok, naming the node that answered");
  }));

test("serve: a missing upstream and an exposed host without keys are clear start-up errors", async () => {
  const dir = await tempDir();
  try {
    for (const [args, pattern] of [
      [["--data", dir], /no upstream: pass --upstream/],
      [["--data", dir, "--upstream", "mock", "--host", "0.0.0.0"], /without API keys.*--no-auth/],
    ] as const) {
      const server = startServer([...args]);
      await assert.rejects(server, pattern);
    }
  } finally {
    await removeDir(dir);
  }
});
