import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import { type BatchEngineOptions, createBatchEngine } from "../src/batch/engine/engine.ts";
import { silentLogger } from "../src/shared/logger.ts";
import { createHttpTarget } from "../src/targets/http_target.ts";
import { createInProcessTarget } from "../src/targets/in_process.ts";
import { createMockTarget } from "../src/targets/mock.ts";
import { type Target, TargetError, type TargetRequest } from "../src/targets/types.ts";
import { StorageError } from "../src/storage/errors.ts";
import { createMemoryStorage } from "../src/storage/memory.ts";
import { type Adapter, ADAPTERS, withStorage } from "./_adapters.ts";
import { allCustomIds, ended, line, records, submit, waitUntil } from "./_engine.ts";
import { ManualClock } from "./_clock.ts";
import { eventually } from "./_server.ts";
import { startUpstream, type Upstream } from "./_upstream.ts";

const FAST_BACKOFF = { baseMs: 5, maxMs: 20 };

type EngineOptions = Partial<BatchEngineOptions> & Pick<BatchEngineOptions, "target">;

/** Runs `body` with an engine on a fresh storage of `adapter`, without checkpoints, closed afterwards. */
function withEngineOn(adapter: Adapter, options: EngineOptions, body: (engine: ReturnType<typeof createBatchEngine>) => Promise<void>) {
  return withStorage(adapter, async (storage) => {
    const engine = createBatchEngine({ storage, logger: silentLogger, checkpoints: false, ...options });
    await engine.start();
    try {
      await body(engine);
    } finally {
      await engine.close();
    }
  });
}

/** Runs `body` with an engine (see {@link withEngineOn}) whose target is a fresh local upstream. */
async function withUpstreamOn(
  adapter: Adapter,
  options: Partial<BatchEngineOptions> & { timeoutMs?: number },
  body: (engine: ReturnType<typeof createBatchEngine>, upstream: Upstream) => Promise<void>,
) {
  const upstream = await startUpstream();
  try {
    const target = createHttpTarget({ baseUrl: upstream.baseUrl, apiKey: "up-key", timeoutMs: options.timeoutMs ?? 5_000 });
    await withEngineOn(adapter, { target, backoff: FAST_BACKOFF, ...options }, (engine) => body(engine, upstream));
  } finally {
    await upstream.close();
  }
}

/** The mock target, telling `onSend` of each request first. */
function recordingTarget(onSend: (request: TargetRequest) => void): Target {
  const mock = createMockTarget();
  return { description: "recording", send: (request) => (onSend(request), mock.send(request)) };
}

/** A target whose requests wait until the test answers them (or their signal aborts them). */
function answeringTarget() {
  const mock = createMockTarget();
  const waiting: { request: TargetRequest; answer(): void }[] = [];
  const target: Target = {
    description: "answered by the test",
    send: (request) =>
      new Promise((resolve, reject) => {
        const onAbort = () => reject(new TargetError("aborted", "the request was aborted"));
        if (request.signal.aborted) return onAbort();
        request.signal.addEventListener("abort", onAbort, { once: true });
        waiting.push({ request, answer: () => resolve(mock.send(request)) });
      }),
  };
  return {
    target,
    waiting: () => waiting.length,
    /** Answers the requests waiting now. */
    answerAll: () => waiting.splice(0).forEach((w) => w.answer()),
  };
}

for (const adapter of ADAPTERS) {
  const withEngine = (options: EngineOptions, body: (engine: ReturnType<typeof createBatchEngine>) => Promise<void>) =>
    withEngineOn(adapter, options, body);
  const withUpstream = (
    options: Partial<BatchEngineOptions> & { timeoutMs?: number },
    body: (engine: ReturnType<typeof createBatchEngine>, upstream: Upstream) => Promise<void>,
  ) => withUpstreamOn(adapter, options, body);

  test(`${adapter.name}: engine: results land in the output file (2xx) or the error file (non-2xx, or no response) with the right shapes`, () =>
    withUpstream({ maxRetries: 2, timeoutMs: 300 }, async (engine, upstream) => {
      const batch = await submit(engine, [
        line("ok-1", "ok"),
        line("ok-2", "ok"),
        line("bad-request", "status:400"),
        line("server-error", "status:500"),
        line("flaky", "flaky:2"),
        line("hang", "hang"),
        line("drop", "drop"),
        line("text", "text"),
      ]);
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "completed");
      assert.deepEqual(done.request_counts, { total: 8, completed: 3, failed: 5 });
      const output = await records(engine, done.output_file_id);
      const errors = await records(engine, done.error_file_id);
      assert.deepEqual(output.map((r) => r.custom_id).sort(), ["flaky", "ok-1", "ok-2"]);
      const byId = Object.fromEntries(errors.map((r) => [r.custom_id, r]));
      assert.deepEqual(Object.keys(byId).sort(), ["bad-request", "drop", "hang", "server-error", "text"]);
      const ok = output.find((r) => r.custom_id === "ok-1")!;
      assert.deepEqual(Object.keys(ok), ["id", "custom_id", "response", "error"]);
      const response = ok.response as { status_code: number; request_id: string; body: Record<string, unknown> };
      assert.equal(response.status_code, 200);
      assert.match(response.request_id, /^up-\d+$/, "the upstream's x-request-id");
      assert.equal(response.body.object, "chat.completion");
      assert.equal(ok.error, null);
      assert.equal((byId["bad-request"].response as { status_code: number }).status_code, 400);
      assert.equal(byId["bad-request"].error, null);
      assert.equal((byId["server-error"].response as { status_code: number }).status_code, 500);
      assert.deepEqual(Object.keys(byId.hang), ["id", "custom_id", "response", "error"]);
      assert.equal(byId.hang.response, null);
      assert.equal((byId.hang.error as { code: string }).code, "request_timeout");
      assert.equal((byId.drop.error as { code: string }).code, "connection_error");
      assert.equal((byId.text.error as { code: string }).code, "invalid_response");
      const attempts = (prompt: string) => upstream.requests.filter((r) => r.prompt === prompt).length;
      assert.equal(attempts("bad-request"), 1, "other 4xx are not retried");
      assert.equal(attempts("server-error"), 3, "500 is retried up to max-retries");
      assert.equal(attempts("flaky"), 3, "succeeds on the third attempt");
      assert.equal(attempts("hang"), 3, "timeouts are retried");
      // Three attempts; each may be sent twice, as a client resends a request whose kept-alive connection closed
      // before any answer (the server may have closed it idle): the HTTP/1.1 client does, and so does Deno's fetch.
      assert.ok(attempts("drop") >= 3 && attempts("drop") <= 6, `dropped connections are retried (${attempts("drop")} attempts)`);
      assert.equal(attempts("ok-1"), 1);
      assert.ok(upstream.requests.every((r) => r.authorization === "Bearer up-key"));
      // Usage: three 200s with 10 prompt (2 cached) and 5 completion (1 reasoning) tokens each.
      assert.deepEqual(done.usage, {
        input_tokens: 30,
        input_tokens_details: { cached_tokens: 6 },
        output_tokens: 15,
        output_tokens_details: { reasoning_tokens: 3 },
        total_tokens: 45,
      });
    }));

  test(`${adapter.name}: engine: a 429 with Retry-After pauses the whole target, then the line succeeds`, () =>
    withUpstream({ concurrency: 4, maxRetries: 3 }, async (engine, upstream) => {
      const lines = [line("limited", "ratelimit:1:1"), ...Array.from({ length: 40 }, (_, i) => line(`n${i}`, "slow:30"))];
      const batch = await submit(engine, lines);
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 41, completed: 41, failed: 0 });
      const limited = upstream.requests.filter((r) => r.prompt === "limited");
      assert.equal(limited.length, 2);
      const gap = limited[1].at - limited[0].at;
      assert.ok(gap >= 950, `the retry waited for Retry-After (waited ${gap} ms)`);
      // While paused, nobody else is sent anything (requests already in flight may still arrive at once).
      const quiet = upstream.requests.filter((r) => r.at > limited[0].at + 100 && r.at < limited[0].at + 900);
      assert.deepEqual(quiet.map((r) => r.prompt), [], "no request started during the 429 pause");
    }));

  test(`${adapter.name}: engine: retries give up after max-retries and the batch goes on`, () =>
    withUpstream({ maxRetries: 1 }, async (engine, upstream) => {
      const batch = await submit(engine, [line("always-503", "status:503"), line("fine", "ok")]);
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 2, completed: 1, failed: 1 });
      assert.equal(upstream.requests.filter((r) => r.prompt === "always-503").length, 2);
      const [error] = await records(engine, done.error_file_id);
      assert.equal((error.response as { status_code: number }).status_code, 503);
    }));

  test(`${adapter.name}: engine: cancel mid-run stops dispatching, keeps partial results and ends cancelled`, async () => {
    const upstream = await startUpstream();
    const http = createHttpTarget({ baseUrl: upstream.baseUrl, timeoutMs: 5_000 });
    let sent = 0;
    const target: Target = { description: "counting", send: (request) => (sent++, http.send(request)) };
    try {
      await withEngine({ target, concurrency: 2, cancelGraceMs: 5_000 }, async (engine) => {
        const batch = await submit(engine, Array.from({ length: 60 }, (_, i) => line(`c${i}`, "slow:50")));
        await waitUntil(engine, batch.id, (b) => b.request_counts.completed >= 4);
        const cancelling = await engine.cancelBatch("default", batch.id);
        assert.equal(cancelling.status, "cancelling");
        assert.equal(typeof cancelling.cancelling_at, "number");
        const sentAtCancel = sent;
        const done = await waitUntil(engine, batch.id, ended);
        assert.equal(done.status, "cancelled");
        assert.equal(typeof done.cancelled_at, "number");
        // A line whose slot was granted just before the cancel may still go out (at most one per slot); no other.
        assert.ok(sent <= sentAtCancel + 2, `${sent} sent, ${sentAtCancel} at the cancel`);
        const output = await records(engine, done.output_file_id);
        assert.equal(output.length, done.request_counts.completed);
        assert.ok(done.request_counts.completed >= 4 && done.request_counts.completed < 60);
        assert.equal(new Set(output.map((r) => r.custom_id)).size, output.length);
      });
    } finally {
      await upstream.close();
    }
  });

  test(`${adapter.name}: engine: cancel aborts requests still in flight after the grace period`, () =>
    withUpstream({ concurrency: 2, cancelGraceMs: 100 }, async (engine, upstream) => {
      const batch = await submit(engine, [line("h1", "hang"), line("h2", "hang"), line("h3", "hang")]);
      // Both slots hold a request that will never be answered: only the cancel's abort can end them.
      await eventually(async () => upstream.requests.length === 2);
      await engine.cancelBatch("default", batch.id);
      const done = await waitUntil(engine, batch.id, ended, 5_000);
      assert.equal(done.status, "cancelled");
      assert.deepEqual(done.request_counts, { total: 3, completed: 0, failed: 0 });
      assert.equal(done.output_file_id, null);
    }));


  test(`${adapter.name}: engine: when the window expires, undone lines go to the error file as batch_expired`, async () => {
    // Half a second into a second: a "2s" window ends 1.5 s from now (expires_at is in whole seconds).
    const clock = new ManualClock(Date.parse("2026-12-01T00:00:00.500Z"));
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 2, clock }, async (engine) => {
      const ids = Array.from({ length: 30 }, (_, i) => `e${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")), { window: "2s" });
      for (let round = 1; round <= 2; round++) {
        await eventually(async () => upstream.waiting() === 2);
        upstream.answerAll();
        await clock.advance(10); // the results' group commit
        await waitUntil(engine, batch.id, (b) => b.request_counts.completed === 2 * round);
      }
      await eventually(async () => upstream.waiting() === 2);
      await clock.advance(1_479);
      assert.equal((await engine.getBatch("default", batch.id)).status, "in_progress", "not before its window ends");
      // The window ends: the two requests in flight are abandoned, every undone line is expired.
      await clock.advance(1);
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "expired");
      assert.equal(done.expired_at, Math.floor(clock.now() / 1000));
      assert.deepEqual(done.request_counts, { total: 30, completed: 4, failed: 26 });
      const errors = await records(engine, done.error_file_id);
      assert.equal(errors.length, done.request_counts.failed);
      for (const error of errors) {
        assert.equal(error.response, null);
        assert.deepEqual(error.error, {
          code: "batch_expired",
          message: "This request could not be executed before the completion window expired.",
        });
      }
      assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
    });
  });

  test(`${adapter.name}: engine: the in-process target serves a batch from a Hono app with no network hop`, async () => {
    const model = new Hono().post("/v1/embeddings", async (c) => {
      const body = await c.req.json();
      return c.json({
        object: "list",
        data: [{ object: "embedding", index: 0, embedding: [body.input.length] }],
        model: body.model,
        usage: { prompt_tokens: 3, total_tokens: 3 },
      }, 200, { "x-request-id": "in-proc" });
    });
    await withEngine({ target: createInProcessTarget(model.fetch) }, async (engine) => {
      const lines = ["a", "bb", "ccc"].map((input) =>
        JSON.stringify({ custom_id: input, method: "POST", url: "/v1/embeddings", body: { model: "e", input } })
      );
      const batch = await submit(engine, lines, { endpoint: "/v1/embeddings" });
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 3, completed: 3, failed: 0 });
      assert.equal(done.usage.input_tokens, 9);
      assert.equal(done.usage.total_tokens, 9);
      const output = await records(engine, done.output_file_id);
      const lengths = Object.fromEntries(output.map((r) => {
        const response = r.response as { request_id: string; body: { data: { embedding: number[] }[] } };
        assert.equal(response.request_id, "in-proc");
        return [r.custom_id, response.body.data[0].embedding[0]];
      }));
      assert.deepEqual(lengths, { a: 1, bb: 2, ccc: 3 });
    });
  });

  test(`${adapter.name}: engine: the mock target answers every endpoint with usage`, async () => {
    await withEngine({ target: createMockTarget() }, async (engine) => {
      for (const endpoint of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations"]) {
        const body = endpoint === "/v1/chat/completions"
          ? { model: "m", messages: [{ role: "user", content: "one two three" }] }
          : { model: "m", input: "one two three", prompt: "one two three" };
        const lines = [JSON.stringify({ custom_id: "x", method: "POST", url: endpoint, body })];
        const done = await waitUntil(engine, (await submit(engine, lines, { endpoint })).id, ended);
        assert.deepEqual(done.request_counts, { total: 1, completed: 1, failed: 0 }, endpoint);
        const [record] = await records(engine, done.output_file_id);
        assert.equal((record.response as { status_code: number }).status_code, 200);
        if (endpoint !== "/v1/moderations") assert.ok(done.usage.input_tokens > 0, `${endpoint} reports usage`);
      }
    });
  });

  test(`${adapter.name}: engine: each body reaches the target exactly as written in its line (big integers, spacing, number spellings)`, async () => {
    const sent: string[] = [];
    await withEngine({ target: recordingTarget((request) => sent.push(request.bodyText)) }, async (engine) => {
      const bodies = [
        '{"model":"m","seed":12345678901234567890,"temperature":1.0,"messages":[{"role":"user","content":"a \\\"}"}]}',
        '{ "model" : "m" , "messages" : [ ] , "logit_bias" : { "50256" : -100 } }',
      ];
      const lines = bodies.map((body, i) => `{"custom_id":"c${i}","method":"POST","url":"/v1/chat/completions","body":${body}}`);
      const done = await waitUntil(engine, (await submit(engine, lines)).id, ended);
      assert.equal(done.status, "completed");
      assert.deepEqual(sent.sort(), [...bodies].sort());
    });
  });

  test(`${adapter.name}: engine: a line's custom_id comes back as the string it stands for, whatever its escapes and member order`, async () => {
    const urls = new Set<string>();
    await withEngine({ target: recordingTarget((request) => urls.add(request.url)) }, async (engine) => {
      const lines = [
        '{"custom_id":"caf\\u00e9 \\"q\\" \\\\ \\/","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}',
        '{ "body" : {"custom_id":"inner"} , "url":"/v1/chat/completions", "method":"POST", "custom_id" : "body-first" }',
        '{"cust\\u006fm_id":"escaped-name","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}',
      ];
      const done = await waitUntil(engine, (await submit(engine, lines)).id, ended);
      assert.equal(done.status, "completed");
      const ids = (await records(engine, done.output_file_id)).map((r) => r.custom_id).sort();
      assert.deepEqual(ids, ['café "q" \\ /', "body-first", "escaped-name"].sort());
      assert.deepEqual([...urls], ["/v1/chat/completions"]);
    });
  });

  test(`${adapter.name}: engine: with a token budget, a request waits for the output its body asks for at most`, async () => {
    const sent: string[] = [];
    // Answers report no usage, so the budget is spent by the estimates alone.
    const target: Target = {
      description: "no usage",
      send: (request) => {
        sent.push(request.bodyText);
        return Promise.resolve({ status: 200, body: {}, requestId: null, retryAfterMs: null, json: true });
      },
    };
    // 1,000 tokens a second, 60,000 at first.
    const clock = new ManualClock();
    await withEngine({ target, tokensPerMinute: 60_000, clock }, async (engine) => {
      // Each asks for up to 25,000 tokens of output (the first by the name that comes first): two fit the budget.
      const lines = [0, 1, 2].map((i) =>
        line(`c${i}`, "m", i === 0 ? { max_completion_tokens: 25_000, max_tokens: 1 } : { max_tokens: 25_000 })
      );
      const batch = await submit(engine, lines);
      await eventually(async () => sent.length === 2);
      await clock.advance(10);
      await waitUntil(engine, batch.id, (b) => b.request_counts.completed === 2);
      // About 10,000 tokens are left; the third needs about 25,000: some 15 s of refill.
      await clock.advance(14_000);
      assert.equal(sent.length, 2, "the third waits for its 25,000 tokens");
      await clock.advance(2_000);
      await eventually(async () => sent.length === 3);
    });
  });

  test(`${adapter.name}: engine: a 10,000-line batch through the mock target has every custom_id exactly once`, async () => {
    await withEngine({ target: createMockTarget(), concurrency: 64 }, async (engine) => {
      const ids = Array.from({ length: 10_000 }, (_, i) => `id-${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")));
      const done = await waitUntil(engine, batch.id, ended, 120_000);
      assert.deepEqual(done.request_counts, { total: 10_000, completed: 10_000, failed: 0 });
      assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
    });
  });
}

test("engine: an append that fails after writing its records neither loses nor repeats a result", async () => {
  const base = createMemoryStorage();
  let failures = 2;
  const storage = {
    ...base,
    logs: {
      ...base.logs,
      // The records reach the log, then the flush "fails" (as an fsync error would report).
      async append(key: string, records: readonly string[]) {
        const result = await base.logs.append(key, records);
        if (key.endsWith("/output") && failures-- > 0) throw new StorageError("io", "simulated fsync failure", { key });
        return result;
      },
    },
  };
  const logger = { lines: [] as string[], info() {}, warn() {}, error(m: string) { logger.lines.push(m); } };
  const engine = createBatchEngine({ storage, target: createMockTarget({ latencyMs: 1 }), logger, checkpoints: false });
  await engine.start();
  try {
    const ids = Array.from({ length: 300 }, (_, i) => `f${i}`);
    const batch = await submit(engine, ids.map((id) => line(id, "m")));
    const done = await waitUntil(engine, batch.id, ended, 30_000);
    assert.deepEqual(done.request_counts, { total: 300, completed: 300, failed: 0 });
    assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
    assert.ok(logger.lines.some((l) => l.includes("simulated fsync failure")), "the failure was reported");
  } finally {
    await engine.close();
    await base.close();
  }
});
