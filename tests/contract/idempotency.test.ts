/**
 * `Idempotency-Key` on the creates (files, batches, message batches), on the
 * data directory and on PostgreSQL: a retry with the same key and request
 * gets the first answer (after a restart too, and from another node), another
 * request with the key is a 409 naming it, and creates raced with one key
 * make one object.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { BatchObject, FileObject } from "../../src/batch/model/objects.ts";
import { type Adapter, ADAPTERS, POSTGRES } from "../support/adapters.ts";
import { chatLine, makeTestApp, postJson, type TestApp, upload } from "../support/app.ts";
import { ManualClock } from "../support/clock.ts";
import { IDEMPOTENCY_TTL_MS, IdempotencyKeys } from "../../src/batch/model/idempotency.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";

async function withApps(adapter: Adapter, nodes: number, body: (apps: TestApp[], restart: () => Promise<TestApp[]>) => Promise<void>) {
  await adapter.withPlace(async (place) => {
    const open = async () => await Promise.all(Array.from({ length: nodes }, async () => makeTestApp({ storage: await place.open() })));
    let apps = await open();
    try {
      await body(apps, async () => {
        for (const t of apps) await t.close();
        apps = await open();
        return apps;
      });
    } finally {
      for (const t of apps) await t.close();
    }
  });
}

const key = (k: string) => ({ "idempotency-key": k });

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: idempotency: a batch create retried with its key gets the first answer, after a restart too; another request with the key is a 409`, () =>
    withApps(adapter, 1, async ([first], restart) => {
      let { app } = first;
      const file = await (await upload(app, `${chatLine("a")}\n`)).json() as FileObject;
      const body = { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { run: "1" } };
      const created = await postJson(app, "/v1/batches", body, key("create-1"));
      assert.equal(created.status, 200);
      assert.equal(created.headers.get("idempotent-replayed"), null);
      const batch = await created.json() as BatchObject;
      // The same request, its members in another order: the same answer, said to be one given again.
      const retried = await postJson(app, "/v1/batches", { metadata: { run: "1" }, completion_window: "24h", endpoint: "/v1/chat/completions", input_file_id: file.id }, key("create-1"));
      assert.equal(retried.status, 200);
      assert.equal(retried.headers.get("idempotent-replayed"), "true");
      assert.deepEqual(await retried.json(), batch);
      const conflicting = await postJson(app, "/v1/batches", { ...body, metadata: { run: "2" } }, key("create-1"));
      assert.equal(conflicting.status, 409);
      assert.equal(conflicting.headers.get("x-should-retry"), "false");
      const error = (await conflicting.json()).error;
      assert.equal(error.param, "Idempotency-Key");
      assert.match(error.message, /"create-1" was already used with a different request/);
      const another = await (await postJson(app, "/v1/batches", body, key("create-2"))).json() as BatchObject;
      assert.notEqual(another.id, batch.id, "another key, another batch");
      const malformed = await postJson(app, "/v1/batches", body, key("has space"));
      assert.equal(malformed.status, 400);
      assert.equal((await malformed.json()).error.param, "Idempotency-Key");

      ({ app } = (await restart())[0]);
      const afterRestart = await postJson(app, "/v1/batches", body, key("create-1"));
      assert.equal(afterRestart.headers.get("idempotent-replayed"), "true");
      assert.equal((await afterRestart.json() as BatchObject).id, batch.id);
      const listed = await (await app.request("/v1/batches?limit=100")).json() as { data: BatchObject[] };
      assert.equal(listed.data.length, 2, "two keys, two batches, however many retries");
    }));

  test(`${adapter.name}: idempotency: creates raced with one key make one batch, and every racer gets it`, () =>
    withApps(adapter, adapter.name === "postgres" ? 2 : 1, async (apps) => {
      const file = await (await upload(apps[0].app, `${chatLine("a")}\n`)).json() as FileObject;
      const body = { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" };
      // On PostgreSQL, two nodes of one schema take turns answering.
      const answers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
        const response = await postJson(apps[i % apps.length].app, "/v1/batches", body, key("race"));
        assert.equal(response.status, 200, await response.clone().text());
        return (await response.json() as BatchObject).id;
      }));
      assert.equal(new Set(answers).size, 1, `one batch: ${[...new Set(answers)]}`);
      const listed = await (await apps[0].app.request("/v1/batches")).json() as { data: BatchObject[] };
      assert.deepEqual(listed.data.map((b) => b.id), [answers[0]]);
    }));

  test(`${adapter.name}: idempotency: an upload retried with its key is the first file, its bytes not stored twice; other bytes are a 409`, () =>
    withApps(adapter, 1, async ([{ app, engine, storage }]) => {
      const content = `${chatLine("a")}\n${chatLine("b")}\n`;
      const first = await upload(app, content, { purpose: "batch" }, key("upload-1"));
      assert.equal(first.status, 200);
      const file = await first.json() as FileObject;
      const again = await upload(app, content, { purpose: "batch" }, key("upload-1"));
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      assert.deepEqual(await again.json(), file);
      const other = await upload(app, `${chatLine("c")}\n`, { purpose: "batch" }, key("upload-1"));
      assert.equal(other.status, 409);
      const files = await engine.files.list("default", {});
      assert.deepEqual(files.data.map((f) => f.id), [file.id], "one file");
      assert.deepEqual((await storage.blobs.list("files/")).keys, [`files/${file.id}`], "the retry's and the refused upload's bytes are gone");
    }));

  test(`${adapter.name}: idempotency: a message batch create retried with its key is the first message batch; other requests are a 409 in Anthropic's shape`, () =>
    withApps(adapter, 1, async ([{ app }]) => {
      const requests = [{ custom_id: "a", params: { model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] } }];
      const first = await (await postJson(app, "/v1/messages/batches", { requests }, key("mb-1"))).json() as { id: string };
      assert.match(first.id, /^msgbatch_/);
      const again = await postJson(app, "/v1/messages/batches", { requests }, key("mb-1"));
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      assert.equal((await again.json()).id, first.id);
      const other = await postJson(app, "/v1/messages/batches", { requests: [{ ...requests[0], custom_id: "b" }] }, key("mb-1"));
      assert.equal(other.status, 409);
      const body = await other.json();
      assert.equal(body.type, "error");
      assert.equal(body.error.type, "conflict_error");
      const listed = await (await app.request("/v1/messages/batches")).json() as { data: { id: string }[] };
      assert.deepEqual(listed.data.map((b) => b.id), [first.id]);
    }));
}

test("postgres: idempotency: a key's answer is given by another node of the schema", () =>
  withApps(POSTGRES, 2, async ([a, b]) => {
    const file = await (await upload(a.app, `${chatLine("a")}\n`)).json() as FileObject;
    const body = { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" };
    const created = await (await postJson(a.app, "/v1/batches", body, key("cross"))).json() as BatchObject;
    const elsewhere = await postJson(b.app, "/v1/batches", body, key("cross"));
    assert.equal(elsewhere.headers.get("idempotent-replayed"), "true");
    assert.equal((await elsewhere.json() as BatchObject).id, created.id);
  }));

test("idempotency: keys past 24 hours are swept, live ones stay; a create that died without answering frees its key after ten minutes", async () => {
  const clock = new ManualClock();
  const storage = createMemoryStorage();
  const keys = new IdempotencyKeys(storage, clock);
  let made = 0;
  const create = () => Promise.resolve(++made);
  assert.deepEqual(await keys.once("o", "batches", "old", "f", create), { value: 1, replayed: false });
  await clock.advance(IDEMPOTENCY_TTL_MS - 1000);
  assert.deepEqual(await keys.once("o", "batches", "new", "f", create), { value: 2, replayed: false });
  await clock.advance(2000);
  assert.equal(await keys.sweep(), 1, "the old one");
  assert.deepEqual(await keys.once("o", "batches", "new", "f", create), { value: 2, replayed: true });
  assert.deepEqual(await keys.once("o", "batches", "old", "g", create), { value: 3, replayed: false }, "a swept key is free");
  // A create that never answers (its process died) holds its key for ten minutes, then not.
  const dying = keys.once("o", "batches", "dying", "f", () => new Promise<number>(() => {}));
  void dying;
  await clock.advance(10 * 60_000 + 1);
  assert.deepEqual(await keys.once("o", "batches", "dying", "f", create), { value: 4, replayed: false });
  await storage.close();
});
