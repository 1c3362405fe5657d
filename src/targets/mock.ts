/**
 * The built-in mock target: deterministic, OpenAI-shaped answers for chat
 * completions, completions, embeddings, responses and moderations (and
 * Anthropic-shaped ones for messages), with usage
 * figures and an optional latency. For trying batchspool out and for tests.
 *
 * @module
 */
import { sha256Hex } from "../integrity/sha256.ts";
import { type Target, TargetError, type TargetRequest, type TargetResponse } from "./types.ts";

/** Options for {@link createMockTarget}. */
export interface MockTargetOptions {
  /** Milliseconds each answer takes (default 0). */
  latencyMs?: number;
}

const words = (text: string) => Math.max(1, Math.ceil(text.split(/\s+/).filter(Boolean).length * 1.3));

function promptText(body: Record<string, unknown>): string {
  const messages = body.messages;
  if (Array.isArray(messages)) {
    return messages.map((m) => (typeof m?.content === "string" ? m.content : JSON.stringify(m?.content ?? ""))).join(
      "\n",
    );
  }
  const input = body.input ?? body.prompt ?? "";
  return typeof input === "string" ? input : JSON.stringify(input);
}

function answer(url: string, body: Record<string, unknown>, id: string): { status: number; body: Record<string, unknown> } {
  const model = typeof body.model === "string" ? body.model : "mock-model";
  const prompt = promptText(body);
  const reply = `Mock reply to: ${prompt.slice(0, 60)}`;
  const promptTokens = words(prompt);
  const completionTokens = words(reply);
  const created = 1_700_000_000;
  switch (url) {
    case "/v1/chat/completions":
      return {
        status: 200,
        body: {
          id: `chatcmpl-${id}`,
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: reply }, finish_reason: "stop" }],
          usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
        },
      };
    case "/v1/completions":
      return {
        status: 200,
        body: {
          id: `cmpl-${id}`,
          object: "text_completion",
          created,
          model,
          choices: [{ index: 0, text: reply, finish_reason: "stop", logprobs: null }],
          usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
        },
      };
    case "/v1/embeddings": {
      const inputs = Array.isArray(body.input) ? body.input : [body.input ?? ""];
      const digest = sha256Hex(prompt);
      const vector = Array.from({ length: 8 }, (_, i) => parseInt(digest.slice(i * 4, i * 4 + 4), 16) / 65535 - 0.5);
      return {
        status: 200,
        body: {
          object: "list",
          data: inputs.map((_, index) => ({ object: "embedding", index, embedding: vector })),
          model,
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
        },
      };
    }
    case "/v1/responses":
      return {
        status: 200,
        body: {
          id: `resp_${id}`,
          object: "response",
          created_at: created,
          status: "completed",
          model,
          output: [{
            type: "message",
            id: `msg_${id}`,
            role: "assistant",
            status: "completed",
            content: [{ type: "output_text", text: reply, annotations: [] }],
          }],
          usage: {
            input_tokens: promptTokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: completionTokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: promptTokens + completionTokens,
          },
        },
      };
    case "/v1/messages":
      return {
        status: 200,
        body: {
          id: `msg_${id}`,
          type: "message",
          role: "assistant",
          model,
          content: [{ type: "text", text: reply }],
          stop_reason: "end_turn",
          stop_sequence: null,
          usage: { input_tokens: promptTokens, output_tokens: completionTokens },
        },
      };
    case "/v1/moderations":
      return {
        status: 200,
        body: {
          id: `modr-${id}`,
          model: typeof body.model === "string" ? body.model : "omni-moderation-latest",
          results: [{ flagged: false, categories: {}, category_scores: {} }],
        },
      };
    default:
      return {
        status: 404,
        body: { error: { message: `The mock target does not serve ${url}.`, type: "invalid_request_error", param: null, code: null } },
      };
  }
}

/**
 * Creates the mock target.
 *
 * @example
 * ```ts
 * const target = createMockTarget({ latencyMs: 20 });
 * ```
 */
export function createMockTarget(options: MockTargetOptions = {}): Target {
  const latencyMs = options.latencyMs ?? 0;
  return {
    description: latencyMs ? `mock (${latencyMs} ms latency)` : "mock",
    async send(request: TargetRequest): Promise<TargetResponse> {
      if (latencyMs > 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, latencyMs);
          request.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(new TargetError("aborted", "the request was aborted"));
          }, { once: true });
        });
      }
      if (request.signal.aborted) throw new TargetError("aborted", "the request was aborted");
      const body = JSON.parse(request.bodyText) as Record<string, unknown>;
      const id = sha256Hex(request.bodyText).slice(0, 24);
      const result = answer(request.url, body, id);
      return { status: result.status, body: result.body, requestId: `mock-${id}`, retryAfterMs: null, json: true };
    },
  };
}
