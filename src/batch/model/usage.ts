/**
 * Summing token usage across responses of every endpoint's shape.
 *
 * @module
 */
import type { BatchUsage } from "./objects.ts";

const count = (value: unknown): number => (typeof value === "number" && Number.isFinite(value) ? value : 0);

/**
 * Adds a response's `usage` (chat `prompt_tokens`/`completion_tokens` or
 * responses `input_tokens`/`output_tokens`, with cached and reasoning details)
 * to `total`. Unknown shapes add nothing.
 *
 * @example
 * ```ts
 * addUsage(total, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
 * ```
 */
export function addUsage(total: BatchUsage, usage: unknown): void {
  if (typeof usage !== "object" || usage === null) return;
  const u = usage as Record<string, Record<string, unknown> | number | undefined>;
  // Anthropic's Messages count cache reads and writes apart from `input_tokens`; OpenAI's input includes them.
  const cacheRead = count(u.cache_read_input_tokens);
  const input = (count(u.input_tokens) || count(u.prompt_tokens)) + cacheRead + count(u.cache_creation_input_tokens);
  const output = count(u.output_tokens) || count(u.completion_tokens);
  const inputDetails = (u.input_tokens_details ?? u.prompt_tokens_details) as Record<string, unknown> | undefined;
  const outputDetails = (u.output_tokens_details ?? u.completion_tokens_details) as Record<string, unknown> | undefined;
  total.input_tokens += input;
  total.output_tokens += output;
  total.total_tokens += count(u.total_tokens) || input + output;
  total.input_tokens_details.cached_tokens += count(inputDetails?.cached_tokens) + cacheRead;
  total.output_tokens_details.reasoning_tokens += count(outputDetails?.reasoning_tokens);
}

/** The tokens a response reports in total (0 when it reports none). */
export function totalTokensOf(usage: unknown): number {
  if (typeof usage !== "object" || usage === null) return 0;
  const u = usage as Record<string, unknown>;
  return count(u.total_tokens) || count(u.input_tokens) + count(u.output_tokens) ||
    count(u.prompt_tokens) + count(u.completion_tokens);
}

/**
 * A rough token estimate for a request before it is sent: about four bytes of
 * JSON per token, plus the output it asks for at most.
 */
export function estimateRequestTokens(bodyText: string, body: Record<string, unknown>): number {
  const maxOutput = count(body.max_completion_tokens) || count(body.max_tokens) || count(body.max_output_tokens);
  return Math.ceil(bodyText.length / 4) + maxOutput;
}
