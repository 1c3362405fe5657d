/**
 * `GET /v1/batches/{id}/events`: the batch as Server-Sent Events to its end,
 * keep-alive comments while it is quiet, tenancy, and a reconnect.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { BatchObject } from "../../src/batch/model/objects.ts";
import type { Target } from "../../src/targets/types.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { chatLine, makeTestApp, postJson, type TestApp, upload } from "../support/app.ts";
import { eventually } from "../support/server.ts";
import { ManualClock } from "../support/clock.ts";

/** What a stream carried: its events (batch objects, with ids) and how many keep-alive comments. */
interface Received {
  events: { id: string; batch: BatchObject }[];
  keepAlives: number;
}

/** Reads an event stream to its end; `onChunk` sees what arrived so far after every chunk. */
async function readEvents(response: Response, onChunk: (so: Received) => void = () => {}): Promise<Received> {
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const received: Received = { events: [], keepAlives: 0 };
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of response.body!) {
    text += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = text.indexOf("\n\n")) !== -1) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      if (block.startsWith(":")) {
        received.keepAlives++;
        continue;
      }
      const fields = Object.fromEntries(block.split("\n").map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()]));
      assert.equal(fields.event, "batch");
      received.events.push({ id: fields.id, batch: JSON.parse(fields.data) });
    }
    onChunk(received);
  }
  return received;
}

async function createBatch(t: TestApp, lines: number, headers: Record<string, string> = {}): Promise<BatchObject> {
  const file = await (await upload(t.app, Array.from({ length: lines }, (_, i) => chatLine(`e${i}`)).join("\n"), { purpose: "batch" }, headers)).json();
  const response = await postJson(t.app, "/v1/batches", { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }, headers);
  assert.equal(response.status, 200);
  return await response.json();
}

test("events: a batch's changes arrive as events, in order, ending with its final state", async () => {
  const t = await makeTestApp({ target: createMockTarget({ latencyMs: 5 }), concurrency: 2, batchEvents: { everyMs: 5 } });
  try {
    const created = await createBatch(t, 40);
    const { events } = await readEvents(await t.app.request(`/v1/batches/${created.id}/events`));
    assert.ok(events.length >= 2, `${events.length} events`);
    const last = events[events.length - 1].batch;
    assert.equal(last.status, "completed");
    assert.deepEqual(last, await (await t.app.request(`/v1/batches/${created.id}`)).json(), "the last event is the batch");
    for (let i = 1; i < events.length; i++) {
      const [a, b] = [events[i - 1].batch.request_counts, events[i].batch.request_counts];
      assert.ok(b.completed + b.failed >= a.completed + a.failed, "counts never go back");
      assert.notDeepEqual(events[i].batch, events[i - 1].batch, "an event is a change");
    }
    // A reconnect (with Last-Event-ID) gets the current state at once, and the stream ends with it.
    const again = await readEvents(
      await t.app.request(`/v1/batches/${created.id}/events`, { headers: { "last-event-id": events[0].id } }),
    );
    assert.deepEqual(again.events.map((e) => e.batch), [last]);
  } finally {
    await t.close();
  }
});

test("events: a quiet stream gets keep-alive comments until the batch moves", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const mock = createMockTarget();
  const held: Target = { description: "held", send: async (request) => (await gate, await mock.send(request)) };
  const t = await makeTestApp({ target: held, batchEvents: { everyMs: 5, keepAliveMs: 20 } });
  try {
    const created = await createBatch(t, 3);
    const received = await readEvents(await t.app.request(`/v1/batches/${created.id}/events`), (so) => {
      if (so.keepAlives >= 2) release();
    });
    assert.ok(received.keepAlives >= 2);
    assert.equal(received.events[received.events.length - 1].batch.status, "completed");
  } finally {
    release();
    await t.close();
  }
});

test("events: the same keys and tenancy as GET /v1/batches/{id}", async () => {
  const t = await makeTestApp({ apiKeys: ["key-a", "key-b"] });
  try {
    const created = await createBatch(t, 2, { authorization: "Bearer key-a" });
    assert.equal((await t.app.request(`/v1/batches/${created.id}/events`)).status, 401);
    const other = await t.app.request(`/v1/batches/${created.id}/events`, { headers: { authorization: "Bearer key-b" } });
    assert.equal(other.status, 404);
    const plain = await t.app.request(`/v1/batches/${created.id}`, { headers: { authorization: "Bearer key-b" } });
    assert.deepEqual(await other.json(), await plain.json(), "the same 404 as GET /v1/batches/{id}");
    const own = await readEvents(await t.app.request(`/v1/batches/${created.id}/events`, { headers: { authorization: "Bearer key-a" } }));
    assert.equal(own.events[own.events.length - 1].batch.id, created.id);
  } finally {
    await t.close();
  }
});

test("events: a key may hold so many streams open (429 beyond, others unaffected); many streams share one look", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const mock = createMockTarget();
  const held: Target = { description: "held", send: async (request) => (await gate, await mock.send(request)) };
  const clock = new ManualClock(Date.now());
  // The streams sleep 20 ms between looks: counting those sleeps tells when every stream has looked.
  let sleeps = 0;
  const setTimer = clock.setTimeout.bind(clock);
  clock.setTimeout = (callback, ms) => (ms === 20 && sleeps++, setTimer(callback, ms));
  const t = await makeTestApp({ target: held, clock, apiKeys: ["key-a", "key-b"], batchEvents: { everyMs: 20, maxStreamsPerKey: 8 } });
  const a = { authorization: "Bearer key-a" };
  const b = { authorization: "Bearer key-b" };
  const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  try {
    const created = await createBatch(t, 3, a);
    const open = async (headers: Record<string, string>) => await t.app.request(`/v1/batches/${created.id}/events`, { headers });
    for (let i = 0; i < 8; i++) {
      const response = await open(a);
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      await reader.read(); // its first event
      readers.push(reader);
    }
    const refused = await open(a);
    assert.equal(refused.status, 429);
    const body = await refused.json();
    assert.equal(body.error.code, "too_many_streams");
    assert.match(body.error.message, /--max-event-streams/);
    const otherKey = await open(b);
    assert.equal(otherKey.status, 404, "another key is not counted against this one (and sees no batch of it)");

    // Eight streams on one batch: each interval, all eight wake and share one look.
    let looks = 0;
    const getBatch = t.engine.getBatch.bind(t.engine);
    t.engine.getBatch = (owner, id) => (looks++, getBatch(owner, id));
    for (let interval = 1; interval <= 5; interval++) {
      const before = sleeps;
      await clock.advance(20);
      await eventually(async () => sleeps >= before + 8); // every stream looked and sleeps again
      assert.equal(looks, interval, `the eight streams looked ${looks} times in ${interval} interval(s)`);
    }

    await readers.pop()!.cancel();
    await eventually(async () => (await open(a).then((r) => (r.body?.cancel(), r.status))) === 200);
  } finally {
    for (const reader of readers) await reader.cancel().catch(() => {});
    release();
    await t.close();
  }
});
