/**
 * Endpoints beyond the built-in ones (`--endpoint`): a batch of `/v1/rerank`
 * lines reaches the upstream at that path with each body as written, through
 * the unchanged openai SDK; an endpoint not allowed is a 400 naming those that are.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { FS } from "../support/adapters.ts";
import { eventually, startServer } from "../support/server.ts";
import { startUpstream } from "../support/upstream.ts";

test("endpoints: an endpoint the operator allows is forwarded as written; another is a 400 naming those allowed", () =>
  FS.withPlace(async (place) => {
    const upstream = await startUpstream();
    const server = await startServer(["--upstream", upstream.baseUrl, ...place.serveArgs, "--endpoint", "/v1/rerank"]);
    try {
      await server.waitFor(/ready/);
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
      // Spacing and a number JavaScript cannot hold: the upstream must get the bytes of the line.
      const bodies = ['{"model":"ok","query":"q0","documents":["a","b"],  "seed":12345678901234567890}', '{"model":"ok","query":"q1","documents":["c"]}'];
      const lines = bodies.map((body, i) => `{"custom_id":"r${i}","method":"POST","url":"/v1/rerank","body":${body}}`);
      const file = await client.files.create({ file: await toFile(new TextEncoder().encode(lines.join("\n")), "in.jsonl"), purpose: "batch" });
      const batch = await client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/rerank" as "/v1/chat/completions",
        completion_window: "24h",
      });
      const done = await eventually(async () => {
        const b = await client.batches.retrieve(batch.id);
        return b.status === "completed" && b;
      }, 60_000);
      assert.deepEqual(done.request_counts, { total: 2, completed: 2, failed: 0 });
      const sent = upstream.requests.filter((request) => request.path === "/v1/rerank");
      assert.deepEqual(sent.map((request) => request.raw).sort(), [...bodies].sort(), "each body as written in its line");
      const output = (await (await client.files.content(done.output_file_id!)).text()).trim().split("\n");
      assert.deepEqual(output.map((text) => JSON.parse(text).custom_id).sort(), ["r0", "r1"]);

      const refused = await client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/classify" as "/v1/chat/completions",
        completion_window: "24h",
      }).catch((error) => error);
      assert.ok(refused instanceof OpenAI.BadRequestError, String(refused));
      assert.equal(refused.param, "endpoint");
      assert.match(refused.message, /\/v1\/rerank/);
    } finally {
      await server.stop();
      await upstream.close();
    }
  }));
