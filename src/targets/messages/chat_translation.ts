/**
 * Anthropic Messages requests as OpenAI chat completions, and the answers
 * back as Messages: for upstreams that serve `/v1/chat/completions` but not
 * `/v1/messages`. What has no counterpart is refused, naming the field (the
 * line becomes an `errored` result), never dropped silently; hints that
 * change nothing for a self-hosted model (`cache_control`, `service_tier`,
 * disabled `thinking`) are left out.
 *
 * `top_k` has no OpenAI field: it is passed on as `top_k`, which vLLM,
 * SGLang, llama.cpp and Ollama read.
 *
 * @module
 */

// deno-lint-ignore no-explicit-any
type Json = any;

/** A translation, or why there is none: the field (a JSON path into the request) and what is wrong with it. */
export type Translation<T> = { ok: true; value: T } | { ok: false; param: string; message: string };

/** A field the translation cannot carry. */
class Untranslatable extends Error {
  constructor(readonly param: string, message: string) {
    super(message);
  }
}

const refuse = (param: string, message: string): never => {
  throw new Untranslatable(param, message);
};

const isObject = (value: unknown): value is Record<string, Json> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Fields of a Messages request that translate (the rest are refused). */
const REQUEST_FIELDS = new Set([
  "model",
  "max_tokens",
  "messages",
  "system",
  "stop_sequences",
  "temperature",
  "top_p",
  "top_k",
  "tools",
  "tool_choice",
  "metadata",
  "stream",
  "thinking",
  "service_tier",
]);

/**
 * A Messages request (`params` of a batch request) as a chat completions body.
 *
 * @example
 * ```ts
 * messagesToChat({ model: "m", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] });
 * // { ok: true, value: { model: "m", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] } }
 * ```
 */
export function messagesToChat(params: Record<string, Json>): Translation<Record<string, Json>> {
  try {
    return { ok: true, value: requestOf(params) };
  } catch (error) {
    if (error instanceof Untranslatable) return { ok: false, param: error.param, message: error.message };
    throw error;
  }
}

function requestOf(params: Record<string, Json>): Record<string, Json> {
  for (const field of Object.keys(params)) {
    if (!REQUEST_FIELDS.has(field)) refuse(field, `'${field}' has no counterpart in chat completions`);
  }
  if (params.stream === true) refuse("stream", "streaming is not available in a batch");
  if (params.thinking !== undefined && params.thinking?.type !== "disabled") {
    refuse("thinking", "extended thinking has no counterpart in chat completions");
  }
  const body: Record<string, Json> = { model: params.model, max_tokens: params.max_tokens };
  const messages: Json[] = [];
  if (params.system !== undefined) messages.push({ role: "system", content: systemText(params.system) });
  if (!Array.isArray(params.messages)) refuse("messages", "'messages' must be an array");
  params.messages.forEach((message: Json, i: number) => messages.push(...messagesOf(message, `messages[${i}]`)));
  body.messages = messages;
  if (params.stop_sequences !== undefined) body.stop = params.stop_sequences;
  for (const field of ["temperature", "top_p", "top_k"]) if (params[field] !== undefined) body[field] = params[field];
  if (params.metadata?.user_id !== undefined && params.metadata.user_id !== null) body.user = params.metadata.user_id;
  if (params.tools !== undefined) body.tools = (params.tools as Json[]).map((tool, i) => toolOf(tool, `tools[${i}]`));
  if (params.tool_choice !== undefined) Object.assign(body, toolChoiceOf(params.tool_choice));
  return body;
}

function systemText(system: Json): string {
  if (typeof system === "string") return system;
  if (!Array.isArray(system)) return refuse("system", "'system' must be a string or an array of text blocks");
  return system.map((block: Json, i: number) => {
    if (block?.type !== "text") refuse(`system[${i}].type`, `a '${block?.type}' block has no counterpart in a system message`);
    return block.text;
  }).join("\n");
}

/** One Messages message as chat messages: a user turn's tool results become `tool` messages before its other content. */
function messagesOf(message: Json, at: string): Json[] {
  if (!isObject(message) || (message.role !== "user" && message.role !== "assistant")) {
    return refuse(`${at}.role`, "a message's role must be 'user' or 'assistant'");
  }
  if (typeof message.content === "string") return [{ role: message.role, content: message.content }];
  if (!Array.isArray(message.content)) return refuse(`${at}.content`, "'content' must be a string or an array of blocks");
  const blocks = message.content as Json[];
  if (message.role === "assistant") return [assistantMessage(blocks, at)];
  const out: Json[] = [];
  const parts: Json[] = [];
  blocks.forEach((block, i) => {
    const where = `${at}.content[${i}]`;
    switch (block?.type) {
      case "tool_result":
        out.push({ role: "tool", tool_call_id: block.tool_use_id, content: toolResultText(block, where) });
        break;
      case "text":
        parts.push({ type: "text", text: block.text });
        break;
      case "image":
        parts.push({ type: "image_url", image_url: { url: imageUrl(block, where) } });
        break;
      default:
        refuse(`${where}.type`, `a '${block?.type}' block has no counterpart in chat completions`);
    }
  });
  if (parts.length) {
    const onlyText = parts.every((part) => part.type === "text");
    out.push({ role: "user", content: onlyText ? parts.map((part) => part.text).join("\n") : parts });
  }
  return out;
}

function assistantMessage(blocks: Json[], at: string): Json {
  const texts: string[] = [];
  const toolCalls: Json[] = [];
  blocks.forEach((block, i) => {
    const where = `${at}.content[${i}]`;
    if (block?.type === "text") texts.push(block.text);
    else if (block?.type === "tool_use") {
      toolCalls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.input ?? {}) } });
    } else refuse(`${where}.type`, `a '${block?.type}' block has no counterpart in chat completions`);
  });
  const message: Json = { role: "assistant", content: texts.length ? texts.join("\n") : null };
  if (toolCalls.length) message.tool_calls = toolCalls;
  return message;
}

function toolResultText(block: Json, at: string): string {
  const content = block.content;
  const text = content === undefined
    ? ""
    : typeof content === "string"
    ? content
    : (content as Json[]).map((part, i) => {
      if (part?.type !== "text") refuse(`${at}.content[${i}].type`, `a '${part?.type}' block in a tool result has no counterpart in chat completions`);
      return part.text;
    }).join("\n");
  // Chat completions have no error flag on a tool's answer: it is said in the text.
  return block.is_error === true ? `Error: ${text}` : text;
}

function imageUrl(block: Json, at: string): string {
  const source = block.source;
  if (source?.type === "base64") return `data:${source.media_type};base64,${source.data}`;
  if (source?.type === "url") return source.url;
  return refuse(`${at}.source.type`, `an image source of type '${source?.type}' has no counterpart in chat completions`);
}

function toolOf(tool: Json, at: string): Json {
  // Anthropic's own tools (web search, bash, text editor, …) carry a versioned `type`; custom tools have none, or "custom".
  if (tool?.type !== undefined && tool.type !== "custom") refuse(`${at}.type`, `the '${tool.type}' tool runs at Anthropic only`);
  const fn: Json = { name: tool.name, parameters: tool.input_schema };
  if (tool.description !== undefined) fn.description = tool.description;
  return { type: "function", function: fn };
}

function toolChoiceOf(choice: Json): Record<string, Json> {
  const parallel = choice?.disable_parallel_tool_use === true ? { parallel_tool_calls: false } : {};
  switch (choice?.type) {
    case "auto":
      return { tool_choice: "auto", ...parallel };
    case "any":
      return { tool_choice: "required", ...parallel };
    case "none":
      return { tool_choice: "none" };
    case "tool":
      return { tool_choice: { type: "function", function: { name: choice.name } }, ...parallel };
    default:
      return refuse("tool_choice.type", `a tool choice of type '${choice?.type}' has no counterpart in chat completions`);
  }
}

/** Chat completions' reasons to stop, as a Message's. */
const STOP_REASONS: Record<string, string> = {
  stop: "end_turn",
  length: "max_tokens",
  tool_calls: "tool_use",
  function_call: "tool_use",
  content_filter: "refusal",
};

/**
 * A chat completion (2xx body) as the Message a Messages request gets.
 * `stopSequences` are the request's: vLLM and SGLang say which one ended the
 * answer (`choices[0].stop_reason`), and the Message names it.
 *
 * @example
 * ```ts
 * chatToMessage({ id: "c1", model: "m", choices: [{ message: { content: "Hi" }, finish_reason: "stop" }] }, "m", []);
 * // { ok: true, value: { id: "msg_c1", type: "message", role: "assistant", content: [{ type: "text", text: "Hi" }], … } }
 * ```
 */
export function chatToMessage(chat: Record<string, Json>, model: string, stopSequences: readonly string[]): Translation<Record<string, Json>> {
  const choice = Array.isArray(chat.choices) ? chat.choices[0] : undefined;
  if (!isObject(choice) || !isObject(choice.message)) return { ok: false, param: "choices", message: "the upstream's answer has no choice" };
  const content: Json[] = [];
  const text = choice.message.content;
  if (typeof text === "string" && text.length) content.push({ type: "text", text });
  const calls = Array.isArray(choice.message.tool_calls) ? choice.message.tool_calls : [];
  for (const call of calls) {
    let input: Json;
    try {
      input = JSON.parse(call?.function?.arguments || "{}");
    } catch {
      return { ok: false, param: "choices[0].message.tool_calls", message: `the upstream's arguments for tool '${call?.function?.name}' are not JSON` };
    }
    content.push({ type: "tool_use", id: call.id, name: call.function.name, input });
  }
  const matched = typeof choice.stop_reason === "string" && stopSequences.includes(choice.stop_reason) ? choice.stop_reason : null;
  const stopReason = matched !== null ? "stop_sequence" : STOP_REASONS[choice.finish_reason] ?? "end_turn";
  const usage = isObject(chat.usage) ? chat.usage : {};
  // A Message's `input_tokens` leaves out the tokens read from the cache, which chat completions count in.
  const cached = typeof usage.prompt_tokens_details?.cached_tokens === "number" ? usage.prompt_tokens_details.cached_tokens : null;
  return {
    ok: true,
    value: {
      id: `msg_${chat.id ?? crypto.randomUUID().replaceAll("-", "")}`,
      type: "message",
      role: "assistant",
      model: chat.model ?? model,
      content,
      stop_reason: stopReason,
      stop_sequence: matched,
      usage: {
        input_tokens: (usage.prompt_tokens ?? 0) - (cached ?? 0),
        output_tokens: usage.completion_tokens ?? 0,
        cache_creation_input_tokens: null,
        cache_read_input_tokens: cached,
        server_tool_use: null,
        service_tier: "batch",
      },
    },
  };
}
