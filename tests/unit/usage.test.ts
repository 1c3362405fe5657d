import assert from "node:assert/strict";
import { test } from "node:test";
import { estimateRequestTokens } from "../../src/batch/model/usage.ts";

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
