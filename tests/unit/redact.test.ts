import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { redactUrl } from "../../src/shared/redact.ts";
import { webhookEndpoints } from "../../src/webhooks/endpoints.ts";
import { createHttpTarget } from "../../src/targets/http_target.ts";
import { TargetError } from "../../src/targets/types.ts";

test("redactUrl: user info and queries never reach a log; the rest says where", () => {
  assert.equal(redactUrl("https://user:s3cret@llm.internal:8000/v1"), "https://…@llm.internal:8000/v1");
  assert.equal(redactUrl("https://hooks.example.com/in?token=abc&x=1"), "https://hooks.example.com/in?…");
  assert.equal(redactUrl("http://127.0.0.1:9000/v1"), "http://127.0.0.1:9000/v1");
  assert.equal(redactUrl("mock (5 ms latency)"), "mock (5 ms latency)");
  assert.equal(redactUrl("not a url //me:pw@ x?key=1"), "not a url //…@ x?…");
});

test("webhook settings name a key only by its owner, never by a prefix of the key", async () => {
  const dir = await mkdtemp(join(tmpdir(), "redact-"));
  try {
    const file = join(dir, "hooks.json");
    await writeFile(file, JSON.stringify({ "sk-unknown-key-1234": { url: "https://example.com/h", secret: "whsec_x" } }));
    const owner = (key: string) => `key-${key.length}`;
    assert.throws(
      () => webhookEndpoints({ file, url: undefined, secret: undefined }, ["sk-known-key"], owner, "default"),
      (error: Error) => error.message.includes("owner key-19") && !error.message.includes("sk-"),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("an upstream's user info and query stay out of its description and of the errors tenants see", async () => {
  const target = createHttpTarget({ baseUrl: "http://user:pw-do-not-show@127.0.0.1:1/v1?api-key=also-hidden" });
  assert.equal(target.description, "http://…@127.0.0.1:1/v1?…");
  const error = await target
    .send({ url: "/v1/chat/completions", bodyText: "{}", signal: AbortSignal.timeout(5_000) })
    .then(() => null, (e: Error) => e);
  assert.ok(error instanceof TargetError);
  assert.doesNotMatch(error.message, /do-not-show|also-hidden/);
});
