import assert from "node:assert/strict";
import { test } from "node:test";
import { ANTHROPIC_VERSION, createHttpTarget } from "../../src/targets/http_target.ts";
import { withMessagesMode } from "../../src/targets/messages/messages_target.ts";
import { startUpstream } from "../support/upstream.ts";

const send = (target: ReturnType<typeof createHttpTarget>, url: string, body: unknown) =>
  target.send({ url, bodyText: JSON.stringify(body), signal: new AbortController().signal });

const params = { model: "ok", max_tokens: 16, messages: [{ role: "user", content: "hi" }] };

test("messages target: auto finds an upstream that serves /v1/messages and sends it each request as it is, once probed", async () => {
  const upstream = await startUpstream({ messages: true });
  try {
    const target = withMessagesMode(createHttpTarget({ baseUrl: upstream.baseUrl }), "auto");
    const answers = await Promise.all(Array.from({ length: 5 }, () => send(target, "/v1/messages", params)));
    for (const answer of answers) {
      assert.equal(answer.status, 200);
      assert.equal(answer.body.type, "message");
    }
    const probes = upstream.requests.filter((r) => r.path === "/v1/messages" && !("model" in r.body));
    assert.equal(probes.length, 1, "one probe, however many requests came at once");
    const sent = upstream.requests.filter((r) => "model" in r.body);
    assert.equal(sent.length, 5);
    for (const request of sent) {
      assert.equal(request.path, "/v1/messages");
      assert.deepEqual(request.body, params, "verbatim");
      assert.equal(request.anthropicVersion, ANTHROPIC_VERSION);
    }
    assert.equal((await send(target, "/v1/chat/completions", { model: "ok", messages: [] })).body.object, "chat.completion", "other lines go on unchanged");
  } finally {
    await upstream.close();
  }
});

test("messages target: auto finds an upstream without /v1/messages and translates to chat completions and back", async () => {
  const upstream = await startUpstream();
  try {
    const target = withMessagesMode(createHttpTarget({ baseUrl: upstream.baseUrl }), "auto");
    const answer = await send(target, "/v1/messages", { ...params, system: "Be brief.", stop_sequences: ["END"] });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body, {
      id: "msg_chatcmpl-up",
      type: "message",
      role: "assistant",
      model: "ok",
      content: [{ type: "text", text: "echo Be brief." }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: 8, output_tokens: 5, cache_creation_input_tokens: null, cache_read_input_tokens: 2, server_tool_use: null, service_tier: "batch" },
    });
    assert.deepEqual(JSON.parse(answer.bodyJson!), answer.body, "the result record carries the Message");
    const sent = upstream.requests.filter((r) => r.path === "/v1/chat/completions");
    assert.equal(sent.length, 1);
    assert.deepEqual(sent[0].body, {
      model: "ok",
      max_tokens: 16,
      messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "hi" }],
      stop: ["END"],
    });
  } finally {
    await upstream.close();
  }
});

test("messages target: a request that cannot be translated is answered 400 here, naming the field; upstream errors pass as they are", async () => {
  const upstream = await startUpstream({ messages: true });
  try {
    const target = withMessagesMode(createHttpTarget({ baseUrl: upstream.baseUrl }), "translate");
    const refused = await send(target, "/v1/messages", { ...params, thinking: { type: "enabled", budget_tokens: 100 } });
    assert.equal(refused.status, 400);
    assert.equal((refused.body as { type: string }).type, "error");
    assert.deepEqual(Object.keys(refused.body.error as object), ["type", "message"]);
    assert.match((refused.body.error as { message: string }).message, /^thinking: /);
    assert.equal(upstream.requests.length, 0, "nothing reached the upstream, not even a probe");
    const failed = await send(target, "/v1/messages", { ...params, model: "status:503" });
    assert.equal(failed.status, 503);
    assert.deepEqual(upstream.requests.map((r) => r.path), ["/v1/chat/completions"]);
  } finally {
    await upstream.close();
  }
});

test("messages target: native never probes or translates", async () => {
  const upstream = await startUpstream();
  try {
    const target = withMessagesMode(createHttpTarget({ baseUrl: upstream.baseUrl }), "native");
    assert.equal((await send(target, "/v1/messages", params)).status, 404, "the upstream's own answer");
    assert.deepEqual(upstream.requests.map((r) => r.path), ["/v1/messages"]);
  } finally {
    await upstream.close();
  }
});
