import assert from "node:assert/strict";
import { test } from "node:test";
import { messageBatchInput } from "../../src/batch/message_batches/batch_requests.ts";
import { BatchError } from "../../src/batch/model/errors.ts";

/** The body `text` as chunks of `size` bytes. */
async function* chunks(text: string, size: number): AsyncGenerator<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length; at += size) yield bytes.slice(at, at + size);
}

async function linesOf(text: string, size = 1 << 20): Promise<{ lines: string[]; requests: number }> {
  const input = messageBatchInput(chunks(text, size));
  const out = await new Response(input.lines).text();
  return { lines: out.split("\n").filter(Boolean), requests: input.requests() };
}

async function refusal(text: string, size = 7): Promise<BatchError> {
  try {
    await linesOf(text, size);
  } catch (error) {
    assert.ok(error instanceof BatchError, String(error));
    return error;
  }
  assert.fail(`accepted: ${text}`);
}

test("message batch requests: each request becomes a /v1/messages line with its params byte for byte, however the body is cut", async () => {
  const body = `{ "requests" : [
    {"custom_id": "a-1", "params": {"model": "m", "max_tokens": 10, "seed": 12345678901234567890,
      "messages": [{"role": "user", "content": "brace } bracket ] quote \\" newline \\n"}]}},
    {"params": {"model":"m","max_tokens":1.0,"messages":[]}, "custom_id": "b_2"}
  ] }`;
  for (const size of [1, 2, 7, 64, 1 << 20]) {
    const { lines, requests } = await linesOf(body, size);
    assert.equal(requests, 2);
    assert.deepEqual(lines, [
      '{"custom_id":"a-1","method":"POST","url":"/v1/messages","body":{"model": "m", "max_tokens": 10, "seed": 12345678901234567890,       "messages": [{"role": "user", "content": "brace } bracket ] quote \\" newline \\n"}]}}',
      '{"custom_id":"b_2","method":"POST","url":"/v1/messages","body":{"model":"m","max_tokens":1.0,"messages":[]}}',
    ], `chunks of ${size}`);
  }
});

test("message batch requests: a body that is not a batch, or a request that breaks a rule, is refused naming where", async () => {
  const request = (customId: string, params = '{"model":"m"}') => `{"custom_id":${JSON.stringify(customId)},"params":${params}}`;
  const cases: [string, RegExp][] = [
    ["", /^body: the body is empty/],
    ["[]", /^body: the body must be a JSON object/],
    ["{}", /^requests: field required/],
    ['{"requests": []}', /^requests: must contain at least one request/],
    ['{"requests": {}}', /^requests: must be an array/],
    [`{"requests": [${request("a")}], "model": "m"}`, /^model: extra inputs are not permitted/],
    [`{"requests": [${request("a")}, 5]}`, /^requests\.1: must be an object/],
    [`{"requests": [${request("a")} ${request("b")}]}`, /^requests: unexpected "\{" after requests\.0/],
    [`{"requests": [${request("a")}, ${request("a")}]}`, /^requests\.1\.custom_id: duplicate custom_id "a"/],
    [`{"requests": [${request("has space")}]}`, /^requests\.0\.custom_id: must be 1 to 64/],
    [`{"requests": [${request("x".repeat(65))}]}`, /^requests\.0\.custom_id: must be 1 to 64/],
    [`{"requests": [${request("a", '"text"')}]}`, /^requests\.0\.params: must be an object/],
    [`{"requests": [${request("a", '{"model":"m","stream":true}')}]}`, /^requests\.0\.params\.stream: streaming/],
    [`{"requests": [{"custom_id":"a","params":{},"extra":1}]}`, /^requests\.0\.extra: extra inputs are not permitted/],
    [`{"requests": [{"custom_id":"a","params":{]}]}`, /^requests\.0: is not valid JSON/],
    [`{"requests": [${request("a")}]`, /^body: the body ends before its JSON does/],
    [`{"requests": [${request("a")}]} x`, /^requests: unexpected "x" after the body's end/],
  ];
  for (const [body, expected] of cases) {
    const error = await refusal(body);
    assert.equal(error.code, "invalid_request", body);
    assert.match(error.message, expected, body);
  }
});

test("message batch requests: more than 100,000 requests are refused at the 100,001st", async () => {
  const body = `{"requests":[${Array.from({ length: 100_001 }, (_, i) => `{"custom_id":"r${i}","params":{}}`).join(",")}]}`;
  const error = await refusal(body, 1 << 16);
  assert.match(error.message, /^requests: may hold at most 100000 requests/);
});

test("message batch requests: a body over its limit is refused as too large once the limit is passed", async () => {
  const body = `{"requests":[${Array.from({ length: 100 }, (_, i) => `{"custom_id":"r${i}","params":{"model":"m"}}`).join(",")}]}`;
  const input = messageBatchInput(chunks(body, 256), 1024);
  await assert.rejects(new Response(input.lines).text(), (error) => error instanceof BatchError && error.code === "too_large" && /larger than 1024 bytes/.test(error.message));
  assert.ok(input.requests() < 100, "it stopped reading at the limit");
});
