/**
 * The engine contract: what every engine does, on each setup it runs on —
 * memory, a data directory, one PostgreSQL node, three in-process PostgreSQL
 * nodes (`../support/setups.ts`). A client's calls go round the nodes, as
 * behind a load balancer.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Hono } from "hono";
import { type BatchEngine, type BatchEngineOptions, createBatchEngine } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createHttpTarget } from "../../src/targets/http_target.ts";
import { createInProcessTarget } from "../../src/targets/in_process.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { type Target, TargetError, type TargetRequest } from "../../src/targets/types.ts";
import { StorageError } from "../../src/storage/errors.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import { type EngineSetup, type Nodes, SETUPS } from "../support/setups.ts";
import { allCustomIds, driveUntil, ended, line, OWNER, records, submit, uploadInput, waitUntil } from "../support/engine.ts";
import { messageBatchResult } from "../../src/batch/message_batches/batch_results.ts";
import { toMessageBatch } from "../../src/batch/message_batches/message_batch.ts";
import { ManualClock } from "../support/clock.ts";
import { eventually } from "../support/server.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { createApp } from "../../src/http/app.ts";
import { serve } from "../../src/runtime/serve.ts";
import { retryBatch } from "../../src/client/retry.ts";
import { WEBHOOK_OUTBOX_PREFIX } from "../../src/batch/model/storage_keys.ts";
import type { OutboxEntry } from "../../src/batch/model/webhook_event.ts";

/** The webhook outbox's events, as "<batch id> <status>". */
async function outboxOf(nodes: Nodes): Promise<string[]> {
  const { keys } = await nodes.storage.documents.list(WEBHOOK_OUTBOX_PREFIX);
  const entries = await Promise.all(keys.map((key) => nodes.storage.documents.get<OutboxEntry>(key)));
  return entries.map((entry) => `${entry!.value.event.data.id} ${entry!.value.status}`).sort();
}

const FAST_BACKOFF = { baseMs: 5, maxMs: 20 };

type EngineOptions = Partial<BatchEngineOptions> & Pick<BatchEngineOptions, "target">;

/** Runs `body` with the setup's nodes (checkpoints off), the API going round them, closed afterwards. */
function withNodesOn(setup: EngineSetup, options: EngineOptions, body: (engine: BatchEngine, nodes: Nodes) => Promise<void>) {
  return setup.with(options, (nodes) => body(nodes.api, nodes));
}

/** Runs `body` with the setup's nodes (see {@link withNodesOn}) whose target is a fresh local upstream. */
async function withUpstreamOn(
  setup: EngineSetup,
  options: Partial<BatchEngineOptions> & { timeoutMs?: number },
  body: (engine: BatchEngine, upstream: Upstream, nodes: Nodes) => Promise<void>,
) {
  const upstream = await startUpstream();
  try {
    const target = createHttpTarget({ baseUrl: upstream.baseUrl, apiKey: "up-key", timeoutMs: options.timeoutMs ?? 5_000 });
    await withNodesOn(setup, { target, backoff: FAST_BACKOFF, ...options }, (engine, nodes) => body(engine, upstream, nodes));
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
        const entry = { request, answer: () => resolve(mock.send(request)) };
        // An aborted request waits no more: it is neither counted nor answered.
        const onAbort = () => {
          const at = waiting.indexOf(entry);
          if (at >= 0) waiting.splice(at, 1);
          reject(new TargetError("aborted", "the request was aborted"));
        };
        if (request.signal.aborted) return onAbort();
        request.signal.addEventListener("abort", onAbort, { once: true });
        waiting.push(entry);
      }),
  };
  return {
    target,
    waiting: () => waiting.length,
    /** Answers the requests waiting now. */
    answerAll: () => waiting.splice(0).forEach((w) => w.answer()),
  };
}

for (const setup of SETUPS) {
  const withEngine = (options: EngineOptions, body: (engine: BatchEngine, nodes: Nodes) => Promise<void>) =>
    withNodesOn(setup, options, body);
  const withUpstream = (
    options: Partial<BatchEngineOptions> & { timeoutMs?: number },
    body: (engine: BatchEngine, upstream: Upstream, nodes: Nodes) => Promise<void>,
  ) => withUpstreamOn(setup, options, body);
  const single = setup.name !== "postgres×3";

  test(`${setup.name}: engine: results land in the output file (2xx) or the error file (non-2xx, or no response) with the right shapes`, () =>
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

  // One node's dispatcher pauses its own requests; several nodes each learn of a 429 by their own requests.
  if (single) test(`${setup.name}: engine: a 429 with Retry-After pauses its upstream, then the line succeeds`, () =>
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

  test(`${setup.name}: engine: retries give up after max-retries and the batch goes on`, () =>
    withUpstream({ maxRetries: 1 }, async (engine, upstream) => {
      const batch = await submit(engine, [line("always-503", "status:503"), line("fine", "ok")]);
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 2, completed: 1, failed: 1 });
      assert.equal(upstream.requests.filter((r) => r.prompt === "always-503").length, 2);
      const [error] = await records(engine, done.error_file_id);
      assert.equal((error.response as { status_code: number }).status_code, 503);
    }));

  test(`${setup.name}: engine: cancel mid-run stops dispatching, keeps partial results and ends cancelled`, async () => {
    const upstream = await startUpstream();
    const http = createHttpTarget({ baseUrl: upstream.baseUrl, timeoutMs: 5_000 });
    let sent = 0;
    const target: Target = { description: "counting", send: (request) => (sent++, http.send(request)) };
    try {
      await withEngine({ target, concurrency: 2, cancelGraceMs: 5_000 }, async (engine, nodes) => {
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
        assert.ok(sent <= sentAtCancel + 2 * nodes.all.length, `${sent} sent, ${sentAtCancel} at the cancel`);
        const output = await records(engine, done.output_file_id);
        assert.equal(output.length, done.request_counts.completed);
        assert.ok(done.request_counts.completed >= 4 && done.request_counts.completed < 60);
        assert.equal(new Set(output.map((r) => r.custom_id)).size, output.length);
      });
    } finally {
      await upstream.close();
    }
  });

  test(`${setup.name}: engine: cancel aborts requests still in flight after the grace period`, () =>
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


  // On PostgreSQL, the database's clock judges expiry (one node's clock running fast expires nothing early).
  if (!setup.postgres) test(`${setup.name}: engine: when the window expires, undone lines go to the error file as batch_expired`, async () => {
    // Half a second into a second: a "2s" window ends 1.5 s from now (expires_at is in whole seconds).
    const clock = new ManualClock(Date.parse("2026-12-01T00:00:00.500Z"));
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 2, clock }, async (engine) => {
      const ids = Array.from({ length: 30 }, (_, i) => `e${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")), { window: "2s" });
      for (let round = 1; round <= 2; round++) {
        await eventually(async () => upstream.waiting() === 2);
        upstream.answerAll();
        // The results' group commit.
        await driveUntil(engine, clock, batch.id, (b) => b.request_counts.completed === 2 * round, { stepMs: 5, maxMs: 500 });
      }
      await eventually(async () => upstream.waiting() === 2);
      const windowEnd = Date.parse("2026-12-01T00:00:02.000Z");
      await clock.advance(windowEnd - clock.now() - 1);
      assert.equal((await engine.getBatch("default", batch.id)).status, "in_progress", "not before its window ends");
      // The window ends: at the node's next look at its work (every second), the two requests in flight are
      // abandoned and every undone line is expired. The clock moves past that look at once, then a millisecond
      // a step while the writes finish, so how busy the machine is cannot move the end past the next second.
      await clock.advance(1_001);
      const { batch: done } = await driveUntil(engine, clock, batch.id, ended, { stepMs: 1, maxMs: 5_000 });
      assert.equal(done.status, "expired");
      assert.ok(
        done.expired_at! >= windowEnd / 1000 && done.expired_at! <= windowEnd / 1000 + 1,
        `expired at ${done.expired_at}, its window ended at ${windowEnd / 1000}`,
      );
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

  test(`${setup.name}: engine: the in-process target serves a batch from a Hono app with no network hop`, async () => {
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

  test(`${setup.name}: engine: the mock target answers every endpoint with usage`, async () => {
    await withEngine({ target: createMockTarget() }, async (engine) => {
      for (const endpoint of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations", "/v1/messages"]) {
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

  test(`${setup.name}: engine: each body reaches the target exactly as written in its line (big integers, spacing, number spellings)`, async () => {
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

  test(`${setup.name}: engine: a line's custom_id comes back as the string it stands for, whatever its escapes and member order`, async () => {
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

  // Budgets are shared among live nodes: one node's part is what this test measures.
  if (single) test(`${setup.name}: engine: with a token budget, a request waits for the output its body asks for at most`, async () => {
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
      const { tookMs } = await driveUntil(engine, clock, batch.id, (b) => b.request_counts.completed === 2, { stepMs: 5, maxMs: 1_000 });
      // About 10,000 tokens are left; the third needs about 25,000: some 15 s of refill.
      await clock.advance(14_000 - tookMs);
      assert.equal(sent.length, 2, "the third waits for its 25,000 tokens");
      await clock.advance(2_000);
      await eventually(async () => sent.length === 3);
    });
  });

  test(`${setup.name}: engine: a 10,000-line batch through the mock target has every custom_id exactly once`, async () => {
    await withEngine({ target: createMockTarget(), concurrency: 64 }, async (engine) => {
      const ids = Array.from({ length: 10_000 }, (_, i) => `id-${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")));
      const done = await waitUntil(engine, batch.id, ended, 120_000);
      assert.deepEqual(done.request_counts, { total: 10_000, completed: 10_000, failed: 0 });
      assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
    });
  });

  test(`${setup.name}: engine: the window's end expires a batch by the real clock, never before expires_at, every undone line once`, async () => {
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 2 }, async (engine) => {
      const ids = Array.from({ length: 20 }, (_, i) => `w${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")), { window: "2s" });
      // On a busy machine the window may end before any line is sent: then every line expires.
      await eventually(async () => upstream.waiting() >= 2 || ended(await engine.getBatch("default", batch.id)));
      upstream.answerAll();
      const done = await waitUntil(engine, batch.id, ended, 30_000);
      assert.equal(done.status, "expired");
      assert.ok(done.expired_at! >= done.expires_at, `expired at ${done.expired_at}, its window ended at ${done.expires_at}`);
      const errors = await records(engine, done.error_file_id);
      assert.ok(errors.length > 0 && errors.every((r) => (r.error as { code: string }).code === "batch_expired"));
      assert.deepEqual(done.request_counts, { total: 20, completed: 20 - errors.length, failed: errors.length });
      assert.deepEqual(await allCustomIds(engine, done), [...ids].sort(), "every line once");
    });
  });

  test(`${setup.name}: engine: a message batch's requests left by an expiry or a cancel are recorded as such, each once, and counted`, async () => {
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 2, cancelGraceMs: 0 }, async (engine) => {
      const messagesLine = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/messages", body: { model: "m", max_tokens: 8, messages: [] } });
      const create = async (prefix: string, window: string) => {
        const ids = Array.from({ length: 12 }, (_, i) => `${prefix}${i}`);
        const fileId = await uploadInput(engine, ids.map(messagesLine));
        const batch = await engine.createBatch(OWNER, { input_file_id: fileId, endpoint: "/v1/messages", completion_window: window }, {
          messageBatchRequests: ids.length,
        });
        return { batch, ids };
      };
      for (const [kind, window] of [["expired", "2s"], ["canceled", "24h"]] as const) {
        const { batch, ids } = await create(kind, window);
        // Two requests are answered; the rest are in flight or never sent when the batch ends.
        await eventually(async () => upstream.waiting() >= 2 || ended(await engine.getBatch(OWNER, batch.id)));
        upstream.answerAll();
        if (kind === "canceled") {
          await eventually(async () => (await engine.getBatch(OWNER, batch.id)).request_counts.completed >= 1);
          await engine.cancelBatch(OWNER, batch.id);
        }
        const done = await waitUntil(engine, batch.id, ended, 30_000);
        assert.equal(done.status, kind === "expired" ? "expired" : "cancelled");
        const view = await engine.getBatchView(OWNER, batch.id);
        const shown = toMessageBatch(view.batch, view.messageBatch!, "http://x/results");
        const results = [...(await records(engine, done.output_file_id)), ...(await records(engine, done.error_file_id))]
          .map((record) => JSON.parse(messageBatchResult(JSON.stringify(record))) as { custom_id: string; result: { type: string } });
        assert.deepEqual(results.map((r) => r.custom_id).sort(), [...ids].sort(), "every request once");
        const count = (type: string) => results.filter((r) => r.result.type === type).length;
        assert.equal(shown.processing_status, "ended");
        assert.deepEqual(shown.request_counts, {
          processing: 0,
          succeeded: count("succeeded"),
          errored: 0,
          canceled: kind === "canceled" ? count("canceled") : 0,
          expired: kind === "expired" ? count("expired") : 0,
        });
        assert.equal(count("succeeded") + count(kind), 12, JSON.stringify(shown.request_counts));
        assert.ok(count(kind) > 0, `some requests ${kind}`);
      }
    });
  });

  test(`${setup.name}: engine: an input that fails validation fails the batch with its errors, sends nothing, records its event`, async () => {
    let sent = 0;
    const webhooks = { wants: () => true };
    await withEngine({ target: recordingTarget(() => sent++), webhooks }, async (engine, nodes) => {
      const batch = await submit(engine, [line("a", "m"), "not json", line("a", "m")]);
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "failed");
      assert.deepEqual(done.errors!.data.map((e) => [e.code, e.line]), [["invalid_json_line", 2], ["duplicate_custom_id", 3]]);
      assert.equal(sent, 0);
      assert.deepEqual(await outboxOf(nodes), [`${batch.id} failed`]);
    });
  });

  test(`${setup.name}: engine: a step that cannot succeed fails the batch once, its results kept, its lines stopped as failed (not expired)`, async () => {
    const mock = createMockTarget();
    let sent = 0;
    const target: Target = {
      description: "breaks on the 30th request",
      send: (request) => {
        if (++sent === 30) throw new TypeError("Cannot read properties of undefined (reading 'choices')");
        return mock.send(request);
      },
    };
    await withEngine({ target, concurrency: 2, sliceLimits: { maxLines: 20 } }, async (engine) => {
      const batch = await submit(engine, Array.from({ length: 200 }, (_, i) => line(`p${i}`, "m")));
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "failed");
      assert.equal(done.errors!.data.length, 1);
      assert.equal(done.errors!.data[0].code, "internal_error");
      assert.match(done.errors!.data[0].message, /reading 'choices'/);
      const output = await records(engine, done.output_file_id);
      assert.ok(output.length >= 29 && output.length === done.request_counts.completed, `${output.length} results kept`);
      assert.equal((await records(engine, done.error_file_id)).length, 0, "no line is recorded as expired");
      assert.ok(sent < 200, "the batch stopped");
    });
  });

  test(`${setup.name}: engine: a finalizing that fails once ends the batch failed with its results; one that keeps failing, without them`, async () => {
    for (const failures of [1, Number.POSITIVE_INFINITY]) {
      let left = failures;
      await withEngine({ target: createMockTarget(), stepRetry: FAST_BACKOFF }, async (engine, nodes) => {
        for (const node of nodes.all) {
          const adopt = node.files.adopt.bind(node.files);
          node.files.adopt = (record) => left-- > 0 ? Promise.reject(new TypeError("adopt is broken")) : adopt(record);
        }
        const batch = await submit(engine, Array.from({ length: 10 }, (_, i) => line(`f${i}`, "m")));
        const done = await waitUntil(engine, batch.id, ended);
        assert.equal(done.status, "failed", `${failures} failure(s)`);
        assert.match(done.errors!.data[0].message, /adopt is broken/);
        if (failures === 1) assert.equal((await records(engine, done.output_file_id)).length, 10, "its results kept as files");
        else assert.equal(done.output_file_id, null, "no file could be recorded");
      });
    }
  });

  test(`${setup.name}: engine: each line, token and ended batch is counted once, whichever node did it; the nodes' gauges add up`, async () => {
    const counted = { completed: 0, input: 0, output: 0, ended: [] as string[] };
    const observer = {
      linesFinished: (outcome: string, n: number) => outcome === "completed" && (counted.completed += n),
      tokensUsed: (input: number, output: number) => ((counted.input += input), (counted.output += output)),
      batchEnded: (status: string) => counted.ended.push(status),
    };
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, observer, concurrency: 4 }, async (engine, nodes) => {
      const batch = await submit(engine, Array.from({ length: 40 }, (_, i) => line(`m${i}`, "m")));
      // While its lines wait for answers, every node's gauges together count the batch once.
      await eventually(async () => upstream.waiting() > 0);
      const gauges = () => nodes.all.map((node) => node.stats().batches.in_progress ?? 0).reduce((a, b) => a + b, 0);
      await eventually(async () => gauges() === 1).catch(() => assert.fail(`the nodes' gauges add up to ${gauges()}`));
      const answering = setInterval(() => upstream.answerAll(), 5);
      const done = await waitUntil(engine, batch.id, ended).finally(() => clearInterval(answering));
      assert.equal(counted.completed, 40);
      assert.equal(counted.input, done.usage.input_tokens);
      assert.equal(counted.output, done.usage.output_tokens);
      assert.ok(counted.input > 0);
      // The finalizing node tells its observer once the final status is written.
      await eventually(async () => counted.ended.length > 0);
      assert.deepEqual(counted.ended, ["completed"]);
    });
  });

  test(`${setup.name}: engine: result files are the results as written, never a copy in blobs`, async () => {
    const mock = createMockTarget();
    const target: Target = {
      description: "refuses the model named bad",
      send: (request) =>
        request.bodyText.includes('"model":"bad"')
          ? Promise.resolve({ status: 400, body: { error: { message: "no such model" } }, requestId: null, retryAfterMs: null, json: true })
          : mock.send(request),
    };
    await withEngine({ target }, async (engine, nodes) => {
      const batch = await submit(engine, Array.from({ length: 25 }, (_, i) => line(`c${i}`, i % 5 ? "m" : "bad")));
      const done = await waitUntil(engine, batch.id, ended);
      assert.ok(done.output_file_id && done.error_file_id);
      for (const fileId of [done.output_file_id, done.error_file_id]) {
        const doc = await nodes.storage.documents.get<{ content: { store: string } }>(`tenants/default/files/${fileId}`);
        assert.notEqual(doc?.value.content.store, "blobs", `${fileId} is stored in ${doc?.value.content.store}`);
      }
      // The only bytes in blobs are the input's.
      assert.deepEqual((await nodes.storage.blobs.list("files/")).keys, [`files/${batch.input_file_id}`]);
      assert.equal((await allCustomIds(engine, done)).length, 25);
    });
  });

  test(`${setup.name}: engine: an expired result file is swept by the engine and its content is gone`, async () => {
    const clock = new ManualClock(Date.now());
    await withEngine({ target: createMockTarget(), clock }, async (engine) => {
      const received = await engine.files.receive({
        owner: "default",
        filename: "in.jsonl",
        purpose: "batch",
        content: new TextEncoder().encode([line("x1", "m"), line("x2", "m")].join("\n")),
      });
      const file = await engine.files.commit(received, { purpose: "batch" });
      const created = await engine.createBatch("default", {
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
        output_expires_after: { anchor: "created_at", seconds: 3600 },
      });
      const { batch: done } = await driveUntil(engine, clock, created.id, ended, { stepMs: 20 });
      assert.equal((await records(engine, done.output_file_id)).length, 2);
      // An hour on: the hourly sweep finds the file expired.
      await clock.advance(3_601_000);
      await eventually(async () => (await engine.files.list("default", { purpose: "batch_output" })).data.length === 0);
      await assert.rejects(engine.files.content("default", done.output_file_id!), /No such File object/);
    });
  });

  test(`${setup.name}: engine: a batch's events stream from any node to its final state`, async () => {
    await withEngine({ target: createMockTarget({ latencyMs: 2 }), concurrency: 2 }, async (engine, nodes) => {
      const batch = await submit(engine, Array.from({ length: 30 }, (_, i) => line(`s${i}`, "m")));
      const app = createApp({ engine: nodes.node(nodes.all.length - 1), logger: silentLogger, batchEvents: { everyMs: 5 } });
      const text = await (await app.request(`/v1/batches/${batch.id}/events`)).text();
      const events = text.split("\n\n").filter((block) => block.startsWith("event: batch"));
      const last = JSON.parse(events.at(-1)!.split("\n").find((l) => l.startsWith("data:"))!.slice(5));
      assert.equal(last.status, "completed");
      assert.deepEqual(last.request_counts, { total: 30, completed: 30, failed: 0 });
    });
  });

  test(`${setup.name}: engine: retry makes a batch of the lines that failed, through any node`, async () => {
    await withUpstream({ maxRetries: 0 }, async (engine, _upstream, nodes) => {
      const batch = await submit(engine, [line("ok-1", "ok"), line("bad", "status:400"), line("ok-2", "ok"), line("worse", "status:404")]);
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 4, completed: 2, failed: 2 });
      const app = createApp({ engine: nodes.node(1), logger: silentLogger });
      const server = await serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0, maxRequestBodySize: 1 << 20 });
      try {
        const { batch: retried } = await retryBatch({ baseUrl: `http://127.0.0.1:${server.port}/v1`, apiKey: undefined }, done.id);
        assert.ok(retried);
        const again = await waitUntil(engine, retried.id, ended);
        assert.equal(again.request_counts.total, 2);
        assert.deepEqual((await records(engine, again.error_file_id)).map((r) => r.custom_id).sort(), ["bad", "worse"]);
      } finally {
        await server.close();
      }
    });
  });

  test(`${setup.name}: engine: a restart in the middle of a batch resumes it, every line once`, async () => {
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 3, shutdownGraceMs: 50 }, async (engine, nodes) => {
      const ids = Array.from({ length: 60 }, (_, i) => `r${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")));
      const answering = setInterval(() => upstream.answerAll(), 3);
      try {
        await waitUntil(engine, batch.id, (b) => b.request_counts.completed >= 10);
        const restarted = await nodes.restart();
        const done = await waitUntil(restarted.api, batch.id, ended);
        assert.equal(done.status, "completed");
        assert.deepEqual(done.request_counts, { total: 60, completed: 60, failed: 0 });
        assert.deepEqual(await allCustomIds(restarted.api, done), [...ids].sort());
      } finally {
        clearInterval(answering);
      }
    });
  });

  test(`${setup.name}: engine: retry of a cancelled batch takes every line without a successful result, by cause`, async () => {
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 2, shutdownGraceMs: 50, cancelGraceMs: 50 }, async (engine, nodes) => {
      const ids = Array.from({ length: 12 }, (_, i) => `k${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")));
      // Two lines are answered, then the batch is cancelled with others in flight and the rest never sent.
      await eventually(async () => upstream.waiting() === 2);
      upstream.answerAll();
      await waitUntil(engine, batch.id, (b) => b.request_counts.completed === 2);
      await engine.cancelBatch("default", batch.id);
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "cancelled");
      const succeeded = done.output_file_id ? (await records(engine, done.output_file_id)).map((r) => r.custom_id) : [];
      assert.equal(succeeded.length, 2);
      const app = createApp({ engine: nodes.node(nodes.all.length - 1), logger: silentLogger });
      const server = await serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0, maxRequestBodySize: 1 << 20 });
      try {
        const retried = await retryBatch({ baseUrl: `http://127.0.0.1:${server.port}/v1`, apiKey: undefined }, done.id);
        assert.ok(retried.batch);
        assert.equal(retried.lines, 10);
        assert.equal(Object.values(retried.causes).reduce((a, b) => a + b, 0), 10);
        assert.ok((retried.causes.never_ran ?? 0) > 0, JSON.stringify(retried.causes));
        const input = await new Response((await engine.files.content("default", retried.batch.input_file_id)).stream).text();
        const retriedIds = input.trim().split("\n").map((l) => JSON.parse(l).custom_id).sort();
        assert.deepEqual(retriedIds, ids.filter((id) => !succeeded.includes(id)).sort());
        await engine.cancelBatch("default", retried.batch.id);
      } finally {
        await server.close();
      }
    });
  });

  test(`${setup.name}: engine: an input deleted (through any node) while its batch runs stays until the batch ends, then goes`, async () => {
    const upstream = answeringTarget();
    await withEngine({ target: upstream.target, concurrency: 2 }, async (engine, nodes) => {
      const ids = Array.from({ length: 30 }, (_, i) => `d${i}`);
      const batch = await submit(engine, ids.map((id) => line(id, "m")));
      // Another node than the one that created it is asked to delete its input at once.
      await nodes.node(1).files.delete("default", batch.input_file_id);
      await assert.rejects(engine.files.get("default", batch.input_file_id), /No such File object/);
      const answering = setInterval(() => upstream.answerAll(), 3);
      const done = await waitUntil(engine, batch.id, ended).finally(() => clearInterval(answering));
      assert.equal(done.status, "completed", JSON.stringify(done.errors));
      assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
      // The bytes go just after the final status is written (the batch must be out of the ledger first).
      await eventually(async () => (await nodes.storage.blobs.stat(`files/${batch.input_file_id}`)) === null);
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
