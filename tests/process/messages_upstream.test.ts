/**
 * Batches of Anthropic Messages requests (`/v1/messages` lines, batchspool's
 * extension of the Batch API) through the real server, driven by the
 * unchanged `openai` SDK: to an upstream that serves `/v1/messages` (sent as
 * they are) and to one that serves only chat completions (translated), as
 * `--messages-upstream auto` finds out.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { eventually, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

const messagesLine = (customId: string, params: Record<string, unknown>) =>
  JSON.stringify({ custom_id: customId, method: "POST", url: "/v1/messages", body: params });

const params = (prompt: string, extra: Record<string, unknown> = {}) => ({
  model: "ok",
  max_tokens: 32,
  messages: [{ role: "user", content: prompt }],
  ...extra,
});

/** A line of an output or error file, as far as these tests read it. */
interface ResultRecord {
  custom_id: string;
  response: { status_code: number; body: Record<string, unknown> & { type?: string; content?: unknown; usage?: { input_tokens: number }; error?: { type: string; message: string } } };
}

/** Runs a batch of `lines` against `upstream`; returns its end and its result records by custom_id. */
async function runBatch(upstream: Upstream, lines: string[], flags: string[] = []) {
  const dir = await tempDir();
  const server = await startServer(["--data", dir, "--upstream", upstream.baseUrl, ...flags]);
  try {
    await server.waitFor(/ready/);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const file = await client.files.create({ file: await toFile(new TextEncoder().encode(lines.join("\n")), "messages.jsonl"), purpose: "batch" });
    // `/v1/messages` is not in the SDK's list of endpoints: a cast, as a TypeScript user would write it.
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/messages" as "/v1/chat/completions", completion_window: "24h" });
    assert.equal(batch.endpoint, "/v1/messages");
    const done = await eventually(async () => {
      const b = await client.batches.retrieve(batch.id);
      return ["completed", "failed"].includes(b.status) && b;
    });
    const records = new Map<string, ResultRecord>();
    for (const id of [done.output_file_id, done.error_file_id]) {
      if (!id) continue;
      for (const text of (await (await client.files.content(id)).text()).split("\n").filter(Boolean)) {
        const record = JSON.parse(text);
        assert.ok(!records.has(record.custom_id), "each custom_id once");
        records.set(record.custom_id, record);
      }
    }
    return { done, records };
  } finally {
    await server.stop();
    await removeDir(dir);
  }
}

test("messages batch: an upstream that serves /v1/messages gets each request as written, and its Messages are the results", async () => {
  const upstream = await startUpstream({ messages: true });
  try {
    const { done, records } = await runBatch(upstream, [
      messagesLine("a", params("one")),
      messagesLine("b", params("two", { thinking: { type: "enabled", budget_tokens: 1024 }, top_k: 5 })),
    ]);
    assert.equal(done.status, "completed");
    assert.deepEqual(done.request_counts, { total: 2, completed: 2, failed: 0 });
    assert.equal(done.usage?.input_tokens, 20);
    for (const [id, prompt] of [["a", "one"], ["b", "two"]]) {
      const body = records.get(id)!.response.body;
      assert.equal(body.type, "message");
      assert.deepEqual(body.content, [{ type: "text", text: `echo ${prompt}` }]);
    }
    const sent = upstream.requests.filter((r) => "model" in r.body);
    assert.deepEqual(sent.map((r) => r.path), ["/v1/messages", "/v1/messages"]);
    assert.deepEqual(sent.find((r) => r.prompt === "two")!.body, params("two", { thinking: { type: "enabled", budget_tokens: 1024 }, top_k: 5 }), "verbatim");
    assert.ok(sent.every((r) => r.anthropicVersion === "2023-06-01"));
  } finally {
    await upstream.close();
  }
});

test("messages batch: an upstream of chat completions only gets them translated; what cannot be is an error result naming the field", async () => {
  const upstream = await startUpstream();
  try {
    const { done, records } = await runBatch(upstream, [
      messagesLine("a", params("one", { system: "Be brief." })),
      messagesLine("b", params("two", { thinking: { type: "enabled", budget_tokens: 1024 } })),
      messagesLine("c", params("three", { model: "status:500" })),
    ], ["--max-retries", "0"]);
    assert.equal(done.status, "completed");
    assert.deepEqual(done.request_counts, { total: 3, completed: 1, failed: 2 });
    const message = records.get("a")!.response.body;
    assert.equal(message.type, "message");
    assert.deepEqual(message.content, [{ type: "text", text: "echo Be brief." }]);
    assert.equal(message.usage?.input_tokens, 8, "uncached input, as Anthropic counts it");
    const refused = records.get("b")!.response;
    assert.equal(refused.status_code, 400);
    assert.equal(refused.body.error?.type, "invalid_request_error");
    assert.match(refused.body.error?.message ?? "", /^thinking: /);
    assert.equal(records.get("c")!.response.status_code, 500, "the upstream's own error, as it gave it");
    const sent = upstream.requests.filter((r) => "model" in r.body);
    assert.deepEqual(sent.map((r) => r.path).sort(), ["/v1/chat/completions", "/v1/chat/completions"], "the refused request never left");
  } finally {
    await upstream.close();
  }
});
