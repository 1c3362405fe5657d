/**
 * Webhooks from a real server to a real receiver that verifies them with the
 * `standardwebhooks` library and the `openai` SDK: each end status, retries
 * while the endpoint is down, delivery after a crash, and tenancy.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI, { toFile } from "openai";
import { Webhook } from "standardwebhooks";
import postgres from "postgres";
import { ADAPTERS } from "../support/adapters.ts";
import { databaseUrl, dropSchema, freshSchemaName } from "../support/postgres.ts";
import { line } from "../support/engine.ts";
import { eventually, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";
import { type Delivery, startReceiver } from "../support/webhook_receiver.ts";

const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;

/** Verifies a delivery with both libraries; returns the event. */
async function verified(delivery: Delivery, secret: string): Promise<{ id: string; type: string; object: string; created_at: number; data: { id: string } }> {
  const headers = Object.fromEntries(Object.entries(delivery.headers).map(([k, v]) => [k, String(v)]));
  const viaLibrary = new Webhook(secret).verify(delivery.body, headers) as { id: string };
  const viaSdk = await new OpenAI({ apiKey: "unused" }).webhooks.unwrap(delivery.body, headers, secret);
  assert.deepEqual(viaSdk, viaLibrary);
  assert.equal(headers["webhook-id"], viaLibrary.id, "the webhook-id is the event's id");
  return viaLibrary as never;
}

const bytes = (text: string) => new TextEncoder().encode(text);

test("webhooks: each end of a batch (completed, failed, cancelled, expired) is an OpenAI-shaped event, signed so standardwebhooks and the openai SDK verify it", async () => {
  const dir = await tempDir();
  const receiver = await startReceiver();
  const secret = newSecret();
  const server = await startServer([
    "--upstream", "mock", "--mock-latency", "20", "--concurrency", "1", "--data", dir,
    "--webhook-url", receiver.url, "--webhook-secret", secret,
  ]);
  try {
    await server.waitFor(/ready/);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const create = async (text: string, window = "24h") => {
      const file = await client.files.create({ file: await toFile(bytes(text), "in.jsonl"), purpose: "batch" });
      return await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: window as "24h" });
    };
    const completed = await create([line("a", "m"), line("b", "m")].join("\n"));
    const failed = await create("not json\n");
    const long = await create(Array.from({ length: 200 }, (_, i) => line(`l${i}`, "m")).join("\n"));
    await eventually(async () => (await client.batches.retrieve(long.id)).status === "in_progress");
    await client.batches.cancel(long.id);
    // An extension: a one-second window, which 200 lines at 20 ms each cannot meet.
    const expiring = await create(Array.from({ length: 200 }, (_, i) => line(`x${i}`, "m")).join("\n"), "1s");

    await eventually(async () => receiver.deliveries.length >= 4);
    const events = await Promise.all(receiver.deliveries.map((d) => verified(d, secret)));
    const byBatch = new Map(events.map((e) => [e.data.id, e]));
    assert.equal(byBatch.get(completed.id)?.type, "batch.completed");
    assert.equal(byBatch.get(failed.id)?.type, "batch.failed");
    assert.equal(byBatch.get(long.id)?.type, "batch.cancelled");
    assert.equal(byBatch.get(expiring.id)?.type, "batch.expired");
    for (const event of events) {
      assert.deepEqual(Object.keys(event).sort(), ["created_at", "data", "id", "object", "type"]);
      assert.match(event.id, /^evt_/);
      assert.equal(event.object, "event");
    }
    assert.equal(new Set(events.map((e) => e.id)).size, 4);
  } finally {
    await server.stop();
    await receiver.close();
    await removeDir(dir);
  }
});

test("webhooks: an Anthropic message batch's end is an event too (an extension: hosted message batches have none), naming its batch", async () => {
  const dir = await tempDir();
  const receiver = await startReceiver();
  const secret = newSecret();
  const server = await startServer(["--upstream", "mock", "--data", dir, "--webhook-url", receiver.url, "--webhook-secret", secret]);
  try {
    await server.waitFor(/ready/);
    const anthropic = new Anthropic({ baseURL: server.baseURL.slice(0, -"/v1".length), apiKey: "unused", maxRetries: 0 });
    const batch = await anthropic.messages.batches.create({
      requests: [{ custom_id: "a", params: { model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] } }],
    });
    await eventually(async () => receiver.deliveries.length >= 1);
    const event = await verified(receiver.deliveries[0], secret);
    assert.equal(event.type, "batch.completed");
    assert.equal(event.data.id, batch.id.replace(/^msgbatch_/, "batch_"), "the batch's id: msgbatch_ and batch_ share their suffix");
    assert.equal((await anthropic.messages.batches.retrieve(batch.id)).processing_status, "ended");
  } finally {
    await server.stop();
    await receiver.close();
    await removeDir(dir);
  }
});

test("webhooks: an endpoint that is down for a while gets the event again, with the same webhook-id, until it answers 2xx", async () => {
  const dir = await tempDir();
  const receiver = await startReceiver((attempt) => (attempt <= 2 ? 503 : 200));
  const secret = newSecret();
  const server = await startServer(["--upstream", "mock", "--data", dir, "--webhook-url", receiver.url, "--webhook-secret", secret]);
  try {
    await server.waitFor(/ready/);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const file = await client.files.create({ file: await toFile(bytes(line("a", "m")), "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await eventually(async () => receiver.deliveries.some((d) => d.answered === 200), 30_000);
    assert.deepEqual(receiver.deliveries.map((d) => d.answered), [503, 503, 200]);
    assert.equal(new Set(receiver.deliveries.map((d) => d.headers["webhook-id"])).size, 1, "one webhook-id across retries");
    assert.equal((await verified(receiver.deliveries[2], secret)).data.id, batch.id);
  } finally {
    await server.stop();
    await receiver.close();
    await removeDir(dir);
  }
});

test("webhooks: a redirect is a failed attempt, never followed; logs show no endpoint's query", async () => {
  const dir = await tempDir();
  const inside = await startReceiver();
  const outside = await startReceiver((attempt) => (attempt === 1 ? 307 : 200), `${inside.url}?moved=1`);
  const secret = newSecret();
  const server = await startServer([
    "--upstream", "mock", "--data", dir, "--webhook-url", `${outside.url}?token=do-not-log`, "--webhook-secret", secret,
  ]);
  try {
    await server.waitFor(/ready/);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const file = await client.files.create({ file: await toFile(bytes(line("a", "m")), "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await eventually(async () => outside.deliveries.some((d) => d.answered === 200), 30_000);
    assert.deepEqual(outside.deliveries.map((d) => d.answered), [307, 200], "the redirect was retried at the endpoint itself");
    assert.equal(inside.deliveries.length, 0, "the redirect's target got nothing");
    assert.equal((await verified(outside.deliveries[1], secret)).data.id, batch.id);
    assert.match(server.output(), /answered 307 \(redirects are not followed\)/);
    assert.doesNotMatch(server.output(), /do-not-log/);
  } finally {
    await server.stop();
    await outside.close();
    await inside.close();
    await removeDir(dir);
  }
});

for (const adapter of ADAPTERS) {
test(`${adapter.name}: webhooks: a server killed after a batch ended but before its event was delivered delivers it after the restart`, () =>
  adapter.withPlace(async (place) => {
  let up = false;
  const receiver = await startReceiver(() => (up ? 200 : 500));
  const secret = newSecret();
  const args = ["--upstream", "mock", ...place.serveArgs, "--webhook-url", receiver.url, "--webhook-secret", secret];
  let server = await startServer(args);
  try {
    await server.waitFor(/ready/);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    const file = await client.files.create({ file: await toFile(bytes(line("a", "m")), "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await eventually(async () => receiver.deliveries.length >= 1);
    await server.kill();
    up = true;
    server = await startServer(args);
    await eventually(async () => receiver.deliveries.some((d) => d.answered === 200), 30_000);
    const delivered = receiver.deliveries.find((d) => d.answered === 200)!;
    assert.equal(delivered.headers["webhook-id"], receiver.deliveries[0].headers["webhook-id"]);
    assert.equal((await verified(delivered, secret)).data.id, batch.id);
  } finally {
    await server.stop();
    await receiver.close();
  }
}));
}

test("webhooks: with API keys, each key's events go to its own endpoint only", async () => {
  const dir = await tempDir();
  const [a, b] = [await startReceiver(), await startReceiver()];
  const [secretA, secretB] = [newSecret(), newSecret()];
  const webhooksFile = join(dir, "webhooks.json");
  await writeFile(webhooksFile, JSON.stringify({ "key-a": { url: a.url, secret: secretA }, "key-b": { url: b.url, secret: secretB } }));
  const server = await startServer([
    "--upstream", "mock", "--data", join(dir, "data"), "--api-key", "key-a", "--api-key", "key-b", "--api-key", "key-c",
    "--webhooks-file", webhooksFile,
  ]);
  try {
    await server.waitFor(/ready/);
    const run = async (key: string) => {
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: key, maxRetries: 0 });
      const file = await client.files.create({ file: await toFile(bytes(line(key, "m")), "in.jsonl"), purpose: "batch" });
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await eventually(async () => (await client.batches.retrieve(batch.id)).status === "completed");
      return batch.id;
    };
    const [batchA, batchB, batchC] = [await run("key-a"), await run("key-b"), await run("key-c")];
    await eventually(async () => a.deliveries.length >= 1 && b.deliveries.length >= 1);
    assert.deepEqual(await Promise.all(a.deliveries.map(async (d) => (await verified(d, secretA)).data.id)), [batchA]);
    assert.deepEqual(await Promise.all(b.deliveries.map(async (d) => (await verified(d, secretB)).data.id)), [batchB]);
    assert.ok(![...a.deliveries, ...b.deliveries].some((d) => d.body.includes(batchC)), "key-c has no endpoint");
  } finally {
    await server.stop();
    await Promise.all([a.close(), b.close()]);
    await removeDir(dir);
  }
});

test("webhooks: an endpoint that hangs holds two delivery slots at most; other keys' events go on", async () => {
  const dir = await tempDir();
  // Key A's endpoint never answers while the test runs.
  let open = 0;
  let most = 0;
  const hanging: (() => void)[] = [];
  const stuck = createServer((request, response) => {
    most = Math.max(most, ++open);
    request.resume();
    hanging.push(() => response.writeHead(200).end());
    response.on("close", () => open--);
  });
  await new Promise<void>((resolve) => stuck.listen(0, "127.0.0.1", resolve));
  const stuckUrl = `http://127.0.0.1:${(stuck.address() as { port: number }).port}/hooks`;
  const b = await startReceiver();
  const webhooksFile = join(dir, "webhooks.json");
  await writeFile(webhooksFile, JSON.stringify({ "key-a": { url: stuckUrl, secret: newSecret() }, "key-b": { url: b.url, secret: newSecret() } }));
  const server = await startServer([
    "--upstream", "mock", "--data", join(dir, "data"), "--api-key", "key-a", "--api-key", "key-b", "--webhooks-file", webhooksFile,
  ]);
  try {
    await server.waitFor(/ready/);
    const run = async (key: string) => {
      const client = new OpenAI({ baseURL: server.baseURL, apiKey: key, maxRetries: 0 });
      const file = await client.files.create({ file: await toFile(bytes(line(key, "m")), "in.jsonl"), purpose: "batch" });
      return (await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" })).id;
    };
    for (let i = 0; i < 10; i++) await run("key-a");
    await eventually(async () => open >= 2);
    const batchB = await run("key-b");
    await eventually(async () => b.deliveries.length >= 1, 30_000);
    assert.equal(JSON.parse(b.deliveries[0].body).data.id, batchB);
    assert.equal(hanging.length, most, "key A's endpoint has answered nothing yet");
    assert.ok(most <= 2, `${most} deliveries at once to one hanging endpoint`);
  } finally {
    for (const answer of hanging) answer();
    await server.stop();
    stuck.closeAllConnections();
    await new Promise<void>((resolve) => stuck.close(() => resolve()));
    await b.close();
    await removeDir(dir);
  }
});

test("webhooks: a single endpoint with API keys, or a malformed secret, is refused at start", async () => {
  const keyed = await startServer(["--upstream", "mock", "--api-key", "k", "--webhook-url", "http://127.0.0.1:9/h", "--webhook-secret", newSecret()])
    .then(() => null, (error: Error) => error.message);
  assert.match(keyed ?? "", /give each key its own with --webhooks-file/);
  const badSecret = await startServer(["--upstream", "mock", "--webhook-url", "http://127.0.0.1:9/h", "--webhook-secret", "hunter2"])
    .then(() => null, (error: Error) => error.message);
  assert.match(badSecret ?? "", /secret must be whsec_/);
});

test("webhooks: with several nodes on one database, one node delivers each event", async () => {
  const schema = freshSchemaName();
  const receiver = await startReceiver();
  const secret = newSecret();
  const args = ["--upstream", "mock", "--database", databaseUrl(), "--database-schema", schema, "--webhook-url", receiver.url,
    "--webhook-secret", secret];
  const first = await startServer(args);
  const servers = [first];
  try {
    await first.waitFor(/ready/);
    servers.push(await startServer(args));
    await servers[1].waitFor(/ready/);
    const batches = [];
    for (let i = 0; i < 6; i++) {
      const client = new OpenAI({ baseURL: servers[i % 2].baseURL, apiKey: "unused", maxRetries: 0 });
      const file = await client.files.create({ file: await toFile(bytes(line(`r${i}`, "m")), "in.jsonl"), purpose: "batch" });
      batches.push(await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }));
    }
    // Once the outbox is empty, every event was delivered and no node can send one again.
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      await eventually(async () => {
        const [{ n }] = await sql`select count(*)::int as n from ${sql(schema)}.documents where key like 'webhooks/outbox/%'`;
        return receiver.deliveries.length >= batches.length && n === 0;
      }, 60_000);
    } finally {
      await sql.end();
    }
    const ids = receiver.deliveries.map((d) => String(d.headers["webhook-id"]));
    assert.equal(new Set(ids).size, ids.length, "no event delivered twice");
    const delivered = await Promise.all(receiver.deliveries.map(async (d) => (await verified(d, secret)).data.id));
    assert.deepEqual(delivered.sort(), batches.map((b) => b.id).sort());
  } finally {
    for (const server of servers) await server.stop();
    await receiver.close();
    await dropSchema(schema);
  }
});
