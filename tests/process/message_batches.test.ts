/**
 * Anthropic's Message Batches API through the real server, driven by the
 * unchanged `@anthropic-ai/sdk` (base URL without `/v1`, keys as
 * `x-api-key`), on the data directory and on PostgreSQL: create, retrieve,
 * list both ways, results, cancel with partial results, delete, and the
 * errors a client can meet; against an upstream that serves `/v1/messages`
 * and one that serves only chat completions.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import { ADAPTERS } from "../support/adapters.ts";
import { eventually, type ServerProcess, startServer } from "../support/server.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

const KEYS = ["sk-ant-a", "sk-ant-b"];

interface Setup {
  server: ServerProcess;
  upstream: Upstream;
  /** A client of key `i`. */
  client(i?: number): Anthropic;
}

/** A server with two API keys in front of `upstream`, on a fresh place of `adapter`. */
async function withServer(adapter: (typeof ADAPTERS)[number], upstreamOptions: { messages?: boolean }, flags: string[], body: (setup: Setup) => Promise<void>) {
  const upstream = await startUpstream(upstreamOptions);
  try {
    await adapter.withPlace(async (place) => {
      const server = await startServer([...place.serveArgs, "--upstream", upstream.baseUrl, ...KEYS.flatMap((key) => ["--api-key", key]), ...flags]);
      try {
        await server.waitFor(/ready/);
        const origin = server.baseURL.slice(0, -"/v1".length);
        await body({ server, upstream, client: (i = 0) => new Anthropic({ baseURL: origin, apiKey: KEYS[i], maxRetries: 0 }) });
      } finally {
        await server.stop();
      }
    });
  } finally {
    await upstream.close();
  }
}

const request = (customId: string, prompt: string, model = "ok") => ({
  custom_id: customId,
  params: { model, max_tokens: 64, messages: [{ role: "user" as const, content: prompt }] },
});

async function ended(client: Anthropic, id: string) {
  return await eventually(async () => {
    const batch = await client.messages.batches.retrieve(id);
    return batch.processing_status === "ended" && batch;
  }, 60_000);
}

async function resultsOf(client: Anthropic, id: string) {
  const results = new Map<string, Anthropic.Messages.MessageBatchResult>();
  for await (const entry of await client.messages.batches.results(id)) {
    assert.ok(!results.has(entry.custom_id), `${entry.custom_id} once`);
    results.set(entry.custom_id, entry.result);
  }
  return results;
}

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: message batches: create, retrieve, list both ways, results and delete through the Anthropic SDK`, () =>
    withServer(adapter, { messages: true }, [], async ({ client, upstream }) => {
      const anthropic = client();
      const created = [];
      for (let b = 0; b < 3; b++) {
        created.push(await anthropic.messages.batches.create({ requests: [request(`b${b}-one`, "one"), request(`b${b}-two`, "two")] }));
      }
      const batch = created[0];
      assert.match(batch.id, /^msgbatch_[0-9a-f]{36}$/);
      assert.equal(batch.type, "message_batch");
      assert.equal(batch.processing_status, "in_progress");
      assert.deepEqual(batch.request_counts, { processing: 2, succeeded: 0, errored: 0, canceled: 0, expired: 0 });
      assert.equal(batch.results_url, null);
      assert.equal(Date.parse(batch.expires_at) - Date.parse(batch.created_at), 24 * 3600 * 1000);

      const done = await ended(anthropic, batch.id);
      assert.deepEqual(done.request_counts, { processing: 0, succeeded: 2, errored: 0, canceled: 0, expired: 0 });
      assert.ok(done.ended_at && Date.parse(done.ended_at) >= Date.parse(done.created_at));
      assert.equal(done.results_url, `${anthropic.baseURL}/v1/messages/batches/${batch.id}/results`);
      const results = await resultsOf(anthropic, batch.id);
      assert.deepEqual([...results.keys()].sort(), ["b0-one", "b0-two"]);
      const one = results.get("b0-one")!;
      assert.equal(one.type, "succeeded");
      if (one.type === "succeeded") assert.deepEqual(one.message.content, [{ type: "text", text: "echo one" }]);
      assert.ok(upstream.requests.filter((r) => r.path === "/v1/messages" && "model" in r.body).length >= 2);

      // Newest first, a page at a time, both ways.
      const ids = created.map((b) => b.id).reverse();
      const forwards: string[] = [];
      for await (const b of anthropic.messages.batches.list({ limit: 2 })) forwards.push(b.id);
      assert.deepEqual(forwards, ids);
      const first = await anthropic.messages.batches.list({ limit: 2 });
      assert.deepEqual(first.data.map((b) => b.id), ids.slice(0, 2));
      assert.equal(first.has_more, true);
      assert.equal(first.last_id, ids[1]);
      const back = await anthropic.messages.batches.list({ before_id: ids[2], limit: 1 });
      assert.deepEqual(back.data.map((b) => b.id), [ids[1]]);
      assert.equal(back.has_more, true);
      const backAll = await anthropic.messages.batches.list({ before_id: ids[2], limit: 5 });
      assert.deepEqual(backAll.data.map((b) => b.id), ids.slice(0, 2));
      assert.equal(backAll.has_more, false);
      assert.deepEqual((await client(1).messages.batches.list()).data, [], "another key sees none of them");

      // The scheduling extensions, as headers from the unchanged SDK; a bad one is refused before the body is read.
      const scheduled = await anthropic.messages.batches.create(
        { requests: [request("s-one", "one")] },
        { headers: { "batchspool-priority": "7", "batchspool-max-concurrency": "2" } },
      );
      const asBatch = await (await fetch(`${anthropic.baseURL}/v1/batches/${scheduled.id.replace("msgbatch_", "batch_")}`, {
        headers: { "x-api-key": anthropic.apiKey! },
      })).json();
      assert.deepEqual([asBatch.priority, asBatch.max_concurrency], [7, 2]);
      await assert.rejects(
        anthropic.messages.batches.create({ requests: [request("s-two", "two")] }, { headers: { "batchspool-priority": "high" } }),
        (error: unknown) => error instanceof Anthropic.BadRequestError && /priority/.test(error.message),
      );

      const deleted = await anthropic.messages.batches.delete(batch.id);
      assert.deepEqual(deleted, { id: batch.id, type: "message_batch_deleted" });
      await assert.rejects(anthropic.messages.batches.retrieve(batch.id), Anthropic.NotFoundError);
    }));

  test(`${adapter.name}: message batches: a cancel keeps the results so far; every other request is canceled, each once`, () =>
    withServer(adapter, { messages: true }, ["--concurrency", "2"], async ({ client, upstream }) => {
      const anthropic = client();
      // 40 requests of 250 ms, two at a time: five seconds of work, cancelled once a few were sent.
      const requests = Array.from({ length: 40 }, (_, i) => request(`r${i}`, `p${i}`, "slow:250"));
      const batch = await anthropic.messages.batches.create({ requests });
      await eventually(async () => upstream.requests.filter((r) => "model" in r.body).length >= 4);
      const canceling = await anthropic.messages.batches.cancel(batch.id);
      assert.ok(["canceling", "ended"].includes(canceling.processing_status));
      assert.ok(canceling.cancel_initiated_at);
      const done = await ended(anthropic, batch.id);
      const counts = done.request_counts;
      assert.equal(counts.succeeded + counts.canceled, 40, JSON.stringify(counts));
      assert.ok(counts.succeeded >= 2 && counts.canceled >= 1, JSON.stringify(counts));
      const results = await resultsOf(anthropic, batch.id);
      assert.equal(results.size, 40, "every request has a result");
      const types = [...results.values()].map((r) => r.type);
      assert.equal(types.filter((t) => t === "succeeded").length, counts.succeeded);
      assert.equal(types.filter((t) => t === "canceled").length, counts.canceled);
      const again = await anthropic.messages.batches.cancel(batch.id);
      assert.equal(again.processing_status, "ended", "a cancel of an ended batch shows it as it is");
    }));
}

test("message batches: behind a proxy, results_url is built on --public-url", () =>
  withServer(ADAPTERS[0], { messages: true }, ["--public-url", "https://batch.example.com/spool/"], async ({ client }) => {
    const anthropic = client();
    const batch = await anthropic.messages.batches.create({ requests: [request("a", "a")] });
    const done = await ended(anthropic, batch.id);
    assert.equal(done.results_url, `https://batch.example.com/spool/v1/messages/batches/${batch.id}/results`);
  }));

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: message batches: SIGKILLed twice while it runs, the batch resumes and every request has its result once`, async () => {
    const upstream = await startUpstream({ messages: true });
    try {
      await adapter.withPlace(async (place) => {
        const args = [...place.serveArgs, "--upstream", upstream.baseUrl, "--api-key", KEYS[0], "--concurrency", "4", "--checkpoint-interval", "1"];
        let server = await startServer(args);
        const clientOf = (s: ServerProcess) => new Anthropic({ baseURL: s.baseURL.slice(0, -"/v1".length), apiKey: KEYS[0], maxRetries: 0 });
        try {
          await server.waitFor(/ready/);
          const requests = Array.from({ length: 300 }, (_, i) => request(`k${i}`, `p${i}`, "slow:10"));
          const batch = await clientOf(server).messages.batches.create({ requests });
          let succeeded = 0;
          for (let kill = 0; kill < 2; kill++) {
            // Killed once more results are in than at the last start, while requests remain: mid-run, whatever the machine's speed.
            const seen = await eventually(async () => {
              const b = await clientOf(server).messages.batches.retrieve(batch.id);
              return b.request_counts.succeeded > succeeded && b.request_counts.processing > 0 && b;
            }, 60_000, 10);
            succeeded = seen.request_counts.succeeded;
            await server.kill();
            server = await startServer(args);
            await server.waitFor(/ready/);
          }
          const done = await ended(clientOf(server), batch.id);
          assert.deepEqual(done.request_counts, { processing: 0, succeeded: 300, errored: 0, canceled: 0, expired: 0 });
          const results = await resultsOf(clientOf(server), batch.id);
          assert.deepEqual([...results.keys()].sort(), requests.map((r) => r.custom_id).sort(), "every request once");
          assert.ok([...results.values()].every((r) => r.type === "succeeded"));
        } finally {
          await server.stop();
        }
      });
    } finally {
      await upstream.close();
    }
  });
}

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: message batches: an upstream of chat completions only gets the requests translated, and each result is a Message or an error naming the field`, () =>
    withServer(adapter, {}, [], async ({ client, upstream }) => {
      const anthropic = client();
      const batch = await anthropic.messages.batches.create({
        requests: [
          request("plain", "hello"),
          { custom_id: "thinking", params: { ...request("x", "y").params, thinking: { type: "enabled", budget_tokens: 1024 } } },
          request("failing", "z", "status:400"),
        ],
      });
      await ended(anthropic, batch.id);
      const results = await resultsOf(anthropic, batch.id);
      const plain = results.get("plain")!;
      assert.equal(plain.type, "succeeded");
      if (plain.type === "succeeded") {
        assert.equal(plain.message.type, "message");
        assert.deepEqual(plain.message.content, [{ type: "text", text: "echo hello" }]);
        assert.equal(plain.message.stop_reason, "end_turn");
      }
      const thinking = results.get("thinking")!;
      assert.equal(thinking.type, "errored");
      if (thinking.type === "errored") {
        assert.equal(thinking.error.error.type, "invalid_request_error");
        assert.match(thinking.error.error.message, /^thinking: /);
      }
      const failing = results.get("failing")!;
      assert.equal(failing.type, "errored");
      if (failing.type === "errored") {
        assert.equal(failing.error.error.type, "invalid_request_error");
        assert.equal(failing.error.error.message, "upstream says 400");
      }
      assert.deepEqual(
        upstream.requests.filter((r) => "model" in r.body).map((r) => r.path).sort(),
        ["/v1/chat/completions", "/v1/chat/completions"],
      );
    }));
}

test("message batches: what a client can get wrong is refused in Anthropic's error shape, with the status the SDK expects", () =>
  withServer(ADAPTERS[0], { messages: true }, [], async ({ client, server }) => {
    const anthropic = client();
    const refused = async (body: unknown, status: number, message: RegExp) => {
      try {
        await anthropic.messages.batches.create(body as Anthropic.Messages.BatchCreateParams);
      } catch (error) {
        assert.ok(error instanceof Anthropic.APIError, String(error));
        assert.equal(error.status, status);
        const envelope = error.error as { type: string; error: { type: string; message: string } };
        assert.equal(envelope.type, "error");
        assert.equal(envelope.error.type, status === 400 ? "invalid_request_error" : "not_found_error");
        assert.match(envelope.error.message, message);
        assert.match(error.requestID ?? "", /^req_/);
        return;
      }
      assert.fail(`accepted ${JSON.stringify(body)}`);
    };
    await refused({ requests: [request("has space", "a")] }, 400, /^requests\.0\.custom_id: /);
    await refused({ requests: [request("a", "a"), request("a", "b")] }, 400, /^requests\.1\.custom_id: duplicate/);
    await refused({ requests: [{ custom_id: "s", params: { ...request("s", "a").params, stream: true } }] }, 400, /^requests\.0\.params\.stream: /);
    await refused({ requests: [] }, 400, /^requests: must contain at least one/);

    // Its one request never gets an answer: the batch stays in progress for as long as the test needs.
    const batch = await anthropic.messages.batches.create({ requests: [request("a", "a", "hang")] });
    await assert.rejects(anthropic.messages.batches.retrieve("msgbatch_0123456789abcdef0123456789abcdef0123"), Anthropic.NotFoundError);
    await assert.rejects(client(1).messages.batches.retrieve(batch.id), Anthropic.NotFoundError, "another key's batch is not found");
    await assert.rejects(client(1).messages.batches.cancel(batch.id), Anthropic.NotFoundError);
    await assert.rejects(anthropic.messages.batches.delete(batch.id), (error) => error instanceof Anthropic.ConflictError);
    await assert.rejects(anthropic.messages.batches.results(batch.id), /results_url/, "the SDK's own check: no results before the end");
    const response = await fetch(`${server.baseURL}/messages/batches/${batch.id}/results`, { headers: { "x-api-key": KEYS[0] } });
    assert.equal(response.status, 404);
    assert.equal((await anthropic.beta.messages.batches.retrieve(batch.id)).id, batch.id, "the beta namespace (?beta=true) reaches the same routes");
    const unauthenticated = await fetch(`${server.baseURL}/messages/batches`, { headers: { "x-api-key": "sk-wrong" } });
    assert.equal(unauthenticated.status, 401);
    assert.equal((await unauthenticated.json()).error.type, "authentication_error");
    const canceling = await anthropic.messages.batches.cancel(batch.id);
    assert.equal(canceling.processing_status, "canceling", "its request in flight has the cancel's grace period");
    await assert.rejects(anthropic.messages.batches.delete(batch.id), Anthropic.ConflictError, "not while canceling either");
  }));
