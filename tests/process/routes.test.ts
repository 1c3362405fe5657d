/**
 * Several upstreams (`--upstream [model-pattern=]url`, given many times): each
 * line reaches the upstream its model names, a route's replicas share its
 * lines, a replica that refuses connections or answers 5xx is taken out while
 * the others take its lines (each result once), and a model no upstream
 * serves fails validation with `model_not_found` on its line. Through the
 * unchanged openai SDK against a real server and real upstreams.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createServer } from "node:net";
import OpenAI, { toFile } from "openai";
import { FS } from "../support/adapters.ts";
import { eventually, startServer } from "../support/server.ts";
import { startUpstream } from "../support/upstream.ts";

const line = (id: string, model: string) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model, messages: [{ role: "user", content: id }] } });

async function runBatch(client: OpenAI, lines: string[]) {
  const file = await client.files.create({ file: await toFile(new TextEncoder().encode(lines.join("\n")), "in.jsonl"), purpose: "batch" });
  const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  return await eventually(async () => {
    const b = await client.batches.retrieve(batch.id);
    return ["completed", "failed"].includes(b.status) && b;
  }, 90_000);
}

/** A port on 127.0.0.1 where nothing listens (connections are refused). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("routes: each model's lines reach its upstream, replicas share them, an unknown model fails validation on its line", () =>
  FS.withPlace(async (place) => {
    const [llama1, llama2, gpt] = await Promise.all([startUpstream(), startUpstream(), startUpstream()]);
    const server = await startServer([
      ...place.serveArgs,
      "--upstream", `llama-*=${llama1.baseUrl}`,
      "--upstream", `gpt-*=${gpt.baseUrl}`,
      "--upstream", `llama-*=${llama2.baseUrl}`,
    ]);
    try {
      await server.waitFor(/ready/);
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
      const lines = Array.from({ length: 60 }, (_, i) => line(`l${i}`, i % 3 === 0 ? "gpt-4o" : "llama-3"));
      const done = await runBatch(client, lines);
      assert.equal(done.status, "completed");
      assert.deepEqual(done.request_counts, { total: 60, completed: 60, failed: 0 });
      assert.deepEqual(gpt.requests.map((r) => r.model).sort(), Array(20).fill("gpt-4o"));
      const llama = [...llama1.requests, ...llama2.requests];
      assert.equal(llama.length, 40);
      assert.ok(llama.every((r) => r.model === "llama-3"));
      assert.ok(llama1.requests.length > 0 && llama2.requests.length > 0, `both replicas get lines: ${llama1.requests.length}, ${llama2.requests.length}`);
      const output = (await (await client.files.content(done.output_file_id!)).text()).trim().split("\n");
      assert.deepEqual(output.map((text) => JSON.parse(text).custom_id).sort(), lines.map((text) => JSON.parse(text).custom_id).sort());

      const sentBefore = gpt.requests.length + llama.length;
      const refused = await runBatch(client, [line("a", "gpt-4o"), line("b", "mistral-7b"), line("c", "llama-3")]);
      assert.equal(refused.status, "failed");
      assert.deepEqual(refused.errors?.data?.map((e) => [e.code, e.line, e.param]), [["model_not_found", 2, "body.model"]]);
      assert.match(refused.errors!.data![0].message!, /mistral-7b/);
      assert.equal(gpt.requests.length + llama1.requests.length + llama2.requests.length, sentBefore, "nothing of a failed batch is sent");

      const cluster = await (await fetch(new URL("/cluster", server.baseURL))).json();
      assert.deepEqual(cluster.upstreams.map((u: { upstream: string; replicas: unknown[] }) => [u.upstream, u.replicas.length]), [["llama-*", 2], ["gpt-*", 1]]);
    } finally {
      await server.stop();
      await Promise.all([llama1.close(), llama2.close(), gpt.close()]);
    }
  }));

test("routes: a replica that refuses connections and one that answers 500 are taken out; every line is answered once by the live one", () =>
  FS.withPlace(async (place) => {
    const live = await startUpstream();
    const broken = await startUpstream({ failWith: 500 });
    const dead = `http://127.0.0.1:${await closedPort()}/v1`;
    const server = await startServer([
      ...place.serveArgs,
      "--concurrency", "4",
      "--upstream", `m=${dead}`,
      "--upstream", `m=${broken.baseUrl}`,
      "--upstream", `m=${live.baseUrl}`,
    ]);
    try {
      await server.waitFor(/ready/);
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
      const lines = Array.from({ length: 200 }, (_, i) => line(`r${i}`, "m"));
      const done = await runBatch(client, lines);
      assert.deepEqual(done.request_counts, { total: 200, completed: 200, failed: 0 });
      const output = (await (await client.files.content(done.output_file_id!)).text()).trim().split("\n");
      const ids = output.map((text) => JSON.parse(text).custom_id);
      assert.equal(new Set(ids).size, 200, "each line once");
      assert.equal(ids.length, 200);
      assert.equal(new Set(live.requests.map((r) => r.prompt)).size, 200, "the live replica answered every line");
      // Out after three failures in a row, then one probe per cooldown (2 s, doubling): a handful, not a share.
      assert.ok(broken.requests.length <= 12, `the broken replica got ${broken.requests.length} requests`);
      const cluster = await (await fetch(new URL("/cluster", server.baseURL))).json();
      const breakers = cluster.upstreams[0].replicas.map((r: { breaker: string }) => r.breaker);
      assert.equal(breakers[2], "closed");
      assert.notEqual(breakers[1], "closed", "the broken replica is out");
      const metrics = await (await fetch(new URL("/metrics", server.baseURL))).text();
      assert.match(metrics, new RegExp(`batchspool_upstream_replica_out\\{upstream="m",replica="${broken.baseUrl}"\\} 1`));
      assert.match(metrics, new RegExp(`batchspool_upstream_replica_out\\{upstream="m",replica="${live.baseUrl}"\\} 0`));
      assert.match(metrics, /batchspool_upstream_limit\{upstream="m"\} [1-4]\n/);
    } finally {
      await server.stop();
      await Promise.all([live.close(), broken.close()]);
    }
  }));

test("routes: a replica killed mid-batch loses no line; every line is answered once", () =>
  FS.withPlace(async (place) => {
    const [a, b] = await Promise.all([startUpstream(), startUpstream()]);
    const server = await startServer([...place.serveArgs, "--concurrency", "8", "--upstream", `slow:*=${a.baseUrl}`, "--upstream", `slow:*=${b.baseUrl}`]);
    try {
      await server.waitFor(/ready/);
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
      const lines = Array.from({ length: 150 }, (_, i) => line(`k${i}`, "slow:20"));
      const file = await client.files.create({ file: await toFile(new TextEncoder().encode(lines.join("\n")), "in.jsonl"), purpose: "batch" });
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await eventually(async () => b.requests.length >= 10);
      await b.close(); // requests in flight there are cut off; nothing listens any more
      const done = await eventually(async () => {
        const found = await client.batches.retrieve(batch.id);
        return found.status === "completed" && found;
      }, 90_000);
      assert.deepEqual(done.request_counts, { total: 150, completed: 150, failed: 0 });
      const ids = (await (await client.files.content(done.output_file_id!)).text()).trim().split("\n").map((text) => JSON.parse(text).custom_id);
      assert.deepEqual([...ids].sort(), lines.map((text) => JSON.parse(text).custom_id).sort(), "every line once");
    } finally {
      await server.stop();
      await Promise.all([a.close(), b.close()]);
    }
  }));

test("routes: a flapping replica is taken out while it fails and put back once a probe succeeds", () =>
  FS.withPlace(async (place) => {
    const steady = await startUpstream();
    const flapping = await startUpstream({ failWith: 502 });
    const server = await startServer([...place.serveArgs, "--concurrency", "4", "--upstream", `m=${steady.baseUrl}`, "--upstream", `m=${flapping.baseUrl}`]);
    const breaker = async () => (await (await fetch(new URL("/cluster", server.baseURL))).json()).upstreams[0].replicas[1].breaker as string;
    try {
      await server.waitFor(/ready/);
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
      const first = await runBatch(client, Array.from({ length: 100 }, (_, i) => line(`f${i}`, "m")));
      assert.deepEqual(first.request_counts, { total: 100, completed: 100, failed: 0 });
      assert.notEqual(await breaker(), "closed", "out while it fails");
      flapping.setFailWith(null);
      // Its cooldown passes: the next request to the route is its probe.
      await eventually(async () => (await breaker()) === "half-open");
      const servedBefore = flapping.requests.length;
      const second = await runBatch(client, Array.from({ length: 100 }, (_, i) => line(`s${i}`, "m")));
      assert.deepEqual(second.request_counts, { total: 100, completed: 100, failed: 0 });
      assert.equal(await breaker(), "closed", "back after a successful probe");
      assert.ok(flapping.requests.length - servedBefore > 10, `it takes a share again (${flapping.requests.length - servedBefore} of 100)`);
    } finally {
      await server.stop();
      await Promise.all([steady.close(), flapping.close()]);
    }
  }));

test("routes: against an upstream with a hidden limit of 4 in flight, the limit comes down from 16 and few requests are refused", () =>
  FS.withPlace(async (place) => {
    const upstream = await startUpstream({ capacity: 4 });
    const server = await startServer([...place.serveArgs, "--concurrency", "16", "--max-retries", "20", "--upstream", upstream.baseUrl]);
    try {
      await server.waitFor(/ready/);
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
      const done = await runBatch(client, Array.from({ length: 300 }, (_, i) => line(`h${i}`, "slow:20")));
      assert.deepEqual(done.request_counts, { total: 300, completed: 300, failed: 0 });
      const health = await (await fetch(new URL("/health", server.baseURL))).json();
      const [lane] = health.upstreams;
      assert.ok(lane.limit >= 1 && lane.limit <= 6, `the limit came down near 4: ${lane.limit}`);
      const share = upstream.refused / upstream.requests.length;
      assert.ok(share < 0.15, `${upstream.refused} of ${upstream.requests.length} requests refused`);
    } finally {
      await server.stop();
      await upstream.close();
    }
  }));
