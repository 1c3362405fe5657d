import assert from "node:assert/strict";
import { test } from "node:test";
import { emptyUsage } from "../../src/batch/model/objects.ts";
import { addUsage, estimateRequestTokens } from "../../src/batch/model/usage.ts";

test("estimateRequestTokens: a quarter of the body's bytes plus the first output cap that is a positive number", () => {
  const estimate = (body: string, cap: number) =>
    assert.equal(estimateRequestTokens(body, JSON.parse(body)), Math.ceil(body.length / 4) + cap, body);
  estimate('{"model":"m"}', 0);
  estimate('{"model":"m","max_tokens":100}', 100);
  estimate('{"max_tokens":7,"max_completion_tokens":250}', 250);
  estimate('{"max_completion_tokens":0,"max_tokens":9}', 9);
  estimate('{"max_output_tokens":1e3}', 1000);
  estimate('{ "max_tokens" : 12 , "messages":[{"max_tokens":99}] }', 12);
  for (const notANumber of ['"100"', "null", "true", "[5]", '{"n":5}']) estimate(`{"max_tokens":${notANumber}}`, 0);
});

test("addUsage: chat, responses and Anthropic Messages usage sum to one shape; cache reads and writes count as input", () => {
  const total = emptyUsage();
  addUsage(total, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 4 } });
  addUsage(total, { input_tokens: 7, output_tokens: 3, input_tokens_details: { cached_tokens: 1 }, output_tokens_details: { reasoning_tokens: 2 } });
  addUsage(total, { input_tokens: 8, output_tokens: 6, cache_read_input_tokens: 20, cache_creation_input_tokens: 30 });
  assert.deepEqual(total, {
    input_tokens: 10 + 7 + (8 + 20 + 30),
    input_tokens_details: { cached_tokens: 4 + 1 + 20 },
    output_tokens: 5 + 3 + 6,
    output_tokens_details: { reasoning_tokens: 2 },
    total_tokens: 15 + 10 + 64,
  });
});
