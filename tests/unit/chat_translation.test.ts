import assert from "node:assert/strict";
import { test } from "node:test";
import { chatToMessage, messagesToChat } from "../../src/targets/messages/chat_translation.ts";

const translated = (params: Record<string, unknown>) => {
  const result = messagesToChat(params);
  assert.ok(result.ok, JSON.stringify(result));
  return result.value;
};

test("messages → chat: system, text turns, stop sequences, sampling and the user id carry over", () => {
  assert.deepEqual(
    translated({
      model: "m",
      max_tokens: 100,
      system: [{ type: "text", text: "Be brief." }, { type: "text", text: "Be kind.", cache_control: { type: "ephemeral" } }],
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: [{ type: "text", text: "Hello" }] },
        { role: "user", content: [{ type: "text", text: "How" }, { type: "text", text: "are you?" }] },
      ],
      stop_sequences: ["\n\nHuman:"],
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      metadata: { user_id: "u-1" },
      service_tier: "auto",
      thinking: { type: "disabled" },
      stream: false,
    }),
    {
      model: "m",
      max_tokens: 100,
      messages: [
        { role: "system", content: "Be brief.\nBe kind." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello" },
        { role: "user", content: "How\nare you?" },
      ],
      stop: ["\n\nHuman:"],
      temperature: 0.2,
      top_p: 0.9,
      top_k: 40,
      user: "u-1",
    },
  );
});

test("messages → chat: tools, tool choice, tool_use and tool_result blocks, images", () => {
  const body = translated({
    model: "m",
    max_tokens: 10,
    tools: [{ name: "weather", description: "Weather by city", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
    tool_choice: { type: "any", disable_parallel_tool_use: true },
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "Weather here?" },
          { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
          { type: "image", source: { type: "url", url: "https://example.com/a.png" } },
        ],
      },
      { role: "assistant", content: [{ type: "text", text: "Looking." }, { type: "tool_use", id: "tu_1", name: "weather", input: { city: "Oslo" } }] },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "tu_1", content: [{ type: "text", text: "-3 °C" }] },
          { type: "tool_result", tool_use_id: "tu_2", content: "timeout", is_error: true },
          { type: "text", text: "Thanks" },
        ],
      },
    ],
  });
  assert.deepEqual(body.tools, [{
    type: "function",
    function: { name: "weather", description: "Weather by city", parameters: { type: "object", properties: { city: { type: "string" } } } },
  }]);
  assert.equal(body.tool_choice, "required");
  assert.equal(body.parallel_tool_calls, false);
  assert.deepEqual(body.messages, [
    {
      role: "user",
      content: [
        { type: "text", text: "Weather here?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
        { type: "image_url", image_url: { url: "https://example.com/a.png" } },
      ],
    },
    {
      role: "assistant",
      content: "Looking.",
      tool_calls: [{ id: "tu_1", type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } }],
    },
    { role: "tool", tool_call_id: "tu_1", content: "-3 °C" },
    { role: "tool", tool_call_id: "tu_2", content: "Error: timeout" },
    { role: "user", content: "Thanks" },
  ]);
  assert.deepEqual(translated({ model: "m", max_tokens: 1, messages: [], tool_choice: { type: "tool", name: "weather" } }).tool_choice, {
    type: "function",
    function: { name: "weather" },
  });
  assert.equal(translated({ model: "m", max_tokens: 1, messages: [], tool_choice: { type: "none" } }).tool_choice, "none");
});

test("messages → chat: what has no counterpart is refused, naming the field", () => {
  const refused = (params: Record<string, unknown>) => {
    const result = messagesToChat({ model: "m", max_tokens: 1, messages: [], ...params });
    assert.ok(!result.ok);
    return result.param;
  };
  assert.equal(refused({ thinking: { type: "enabled", budget_tokens: 1024 } }), "thinking");
  assert.equal(refused({ stream: true }), "stream");
  assert.equal(refused({ mcp_servers: [] }), "mcp_servers");
  assert.equal(refused({ container: "c" }), "container");
  assert.equal(refused({ tools: [{ type: "web_search_20250305", name: "web_search" }] }), "tools[0].type");
  assert.equal(refused({ tool_choice: { type: "maybe" } }), "tool_choice.type");
  assert.equal(refused({ messages: [{ role: "user", content: [{ type: "document", source: {} }] }] }), "messages[0].content[0].type");
  assert.equal(refused({ messages: [{ role: "user", content: "a" }, { role: "assistant", content: [{ type: "thinking", thinking: "…" }] }] }), "messages[1].content[0].type");
  assert.equal(refused({ messages: [{ role: "system", content: "a" }] }), "messages[0].role");
  assert.equal(refused({ system: [{ type: "image" }] }), "system[0].type");
  assert.equal(refused({ messages: [{ role: "user", content: [{ type: "image", source: { type: "file", file_id: "f" } }] }] }), "messages[0].content[0].source.type");
});

test("chat → message: text, tool calls, stop reasons and usage", () => {
  const chat = {
    id: "chatcmpl-1",
    model: "served-model",
    choices: [{
      message: { role: "assistant", content: "Let me check.", tool_calls: [{ id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Oslo"}' } }] },
      finish_reason: "tool_calls",
    }],
    usage: { prompt_tokens: 12, completion_tokens: 7, prompt_tokens_details: { cached_tokens: 4 } },
  };
  const result = chatToMessage(chat, "asked-model", []);
  assert.ok(result.ok);
  assert.deepEqual(result.value, {
    id: "msg_chatcmpl-1",
    type: "message",
    role: "assistant",
    model: "served-model",
    content: [{ type: "text", text: "Let me check." }, { type: "tool_use", id: "call_1", name: "weather", input: { city: "Oslo" } }],
    stop_reason: "tool_use",
    stop_sequence: null,
    usage: { input_tokens: 8, output_tokens: 7, cache_creation_input_tokens: null, cache_read_input_tokens: 4, server_tool_use: null, service_tier: "batch" },
  });
  const reason = (choice: Record<string, unknown>, stops: string[] = []) => {
    const out = chatToMessage({ choices: [{ message: { content: "x" }, ...choice }] }, "m", stops);
    assert.ok(out.ok);
    return [out.value.stop_reason, out.value.stop_sequence];
  };
  assert.deepEqual(reason({ finish_reason: "stop" }), ["end_turn", null]);
  assert.deepEqual(reason({ finish_reason: "length" }), ["max_tokens", null]);
  assert.deepEqual(reason({ finish_reason: "content_filter" }), ["refusal", null]);
  assert.deepEqual(reason({ finish_reason: "stop", stop_reason: "END" }, ["END"]), ["stop_sequence", "END"]);
  assert.deepEqual(reason({ finish_reason: "stop", stop_reason: 2 }, ["END"]), ["end_turn", null], "a stop token id is not a sequence");
  const noUsage = chatToMessage({ choices: [{ message: { content: "" }, finish_reason: "stop" }] }, "m", []);
  assert.ok(noUsage.ok);
  assert.deepEqual(noUsage.value.content, []);
  assert.equal(noUsage.value.model, "m");
  assert.match(noUsage.value.id, /^msg_[0-9a-f]{32}$/);
});

test("chat → message: an answer without a choice, or with tool arguments that are not JSON, is refused", () => {
  assert.equal(chatToMessage({ choices: [] }, "m", []).ok, false);
  const bad = chatToMessage({ choices: [{ message: { tool_calls: [{ id: "c", function: { name: "f", arguments: "{city:" } }] }, finish_reason: "tool_calls" }] }, "m", []);
  assert.ok(!bad.ok);
  assert.match(bad.message, /tool 'f'/);
});
