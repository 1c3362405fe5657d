import assert from "node:assert/strict";
import { test } from "node:test";
import type { BatchObject, FileObject } from "../../src/batch/model/objects.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import type { Target } from "../../src/targets/types.ts";
import { ManualClock } from "../support/clock.ts";
import { type Adapter, ADAPTERS } from "../support/adapters.ts";
import { eventually } from "../support/server.ts";
import { chatLine, makeTestApp, postForm, postJson, type TestApp, upload, waitForBatch } from "../support/app.ts";

/** Runs `body` with an app on a fresh storage of `adapter`. */
function withAppOn(adapter: Adapter, options: Parameters<typeof makeTestApp>[0], body: (t: TestApp) => Promise<void>) {
  return adapter.withPlace(async (place) => {
    const t = await makeTestApp({ ...options, storage: await place.open() });
    try {
      await body(t);
    } finally {
      await t.close();
    }
  });
}

async function expectError(response: Response, status: number, param?: string | null, code?: string | null) {
  assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${await response.clone().text()}`);
  const body = await response.json();
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
  assert.equal(typeof body.error.message, "string");
  assert.ok(body.error.message.length > 0);
  if (param !== undefined) assert.equal(body.error.param, param);
  if (code !== undefined) assert.equal(body.error.code, code);
  return body.error;
}

const FILE_KEYS = ["bytes", "created_at", "expires_at", "filename", "id", "object", "purpose", "status", "status_details"];
const BATCH_KEYS = [
  "cancelled_at", "cancelling_at", "completed_at", "completion_window", "created_at", "endpoint", "error_file_id",
  "errors", "expired_at", "expires_at", "failed_at", "finalizing_at", "id", "in_progress_at", "input_file_id",
  "max_concurrency", "metadata", "model", "object", "output_file_id", "paused_at", "priority", "request_counts", "status", "usage",
];

async function createBatchFrom(t: TestApp, content: string, extra: Record<string, unknown> = {}, headers = {}) {
  const file = await (await upload(t.app, content, { purpose: "batch" }, headers)).json() as FileObject;
  const response = await postJson(t.app, "/v1/batches", {
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
    ...extra,
  }, headers);
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json() as BatchObject;
}

for (const adapter of ADAPTERS) {
  const withApp = (options: Parameters<typeof makeTestApp>[0], body: (t: TestApp) => Promise<void>) =>
    withAppOn(adapter, options, body);

  test(`${adapter.name}: files: upload, retrieve, list, content and delete round-trip with OpenAI's File object`, () =>
    withApp({}, async ({ app }) => {
      const content = `${chatLine("a")}\n${chatLine("b")}\n`;
      const response = await upload(app, content, { purpose: "batch" });
      assert.equal(response.status, 200);
      const file = await response.json() as FileObject;
      assert.deepEqual(Object.keys(file).sort(), FILE_KEYS);
      assert.match(file.id, /^file-[0-9a-f]{36}$/);
      assert.equal(file.object, "file");
      assert.equal(file.bytes, new TextEncoder().encode(content).length);
      assert.equal(file.filename, "input.jsonl");
      assert.equal(file.purpose, "batch");
      assert.equal(file.expires_at, file.created_at + 30 * 24 * 3600, "batch inputs expire after 30 days");
      assert.deepEqual(await (await app.request(`/v1/files/${file.id}`)).json(), file);
      const list = await (await app.request("/v1/files")).json();
      assert.deepEqual(list, { object: "list", data: [file], first_id: file.id, last_id: file.id, has_more: false });
      const body = await app.request(`/v1/files/${file.id}/content`);
      assert.equal(await body.text(), content);
      assert.deepEqual(await (await app.request(`/v1/files/${file.id}`, { method: "DELETE" })).json(), {
        id: file.id,
        object: "file",
        deleted: true,
      });
      await expectError(await app.request(`/v1/files/${file.id}`), 404, "id");
      await expectError(await app.request(`/v1/files/${file.id}/content`), 404);
    }));

  test(`${adapter.name}: files: expires_after is honoured and checked`, () =>
    withApp({}, async ({ app }) => {
      const ok = await upload(app, "x", { purpose: "user_data", "expires_after[anchor]": "created_at", "expires_after[seconds]": "7200" });
      const file = await ok.json() as FileObject;
      assert.equal(file.expires_at, file.created_at + 7200);
      const plain = await (await upload(app, "x", { purpose: "user_data" })).json() as FileObject;
      assert.equal(plain.expires_at, null);
      await expectError(
        await upload(app, "x", { purpose: "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "60" }),
        400,
        "expires_after[seconds]",
      );
      await expectError(await upload(app, "x", { purpose: "batch", "expires_after[anchor]": "now" }), 400, "expires_after[anchor]");
    }));

  test(`${adapter.name}: files: an expired file is gone from get, content and lists`, () => {
    const clock = new ManualClock(Date.now());
    return withApp({ clock }, async ({ app }) => {
      const file = await (await upload(app, "x", {
        purpose: "user_data",
        "expires_after[anchor]": "created_at",
        "expires_after[seconds]": "3600",
      })).json() as FileObject;
      await clock.advance(3601_000);
      await expectError(await app.request(`/v1/files/${file.id}`), 404);
      assert.deepEqual((await (await app.request("/v1/files")).json()).data, []);
    });
  });

  test(`${adapter.name}: files: bad uploads get 400 with the param, 415 without multipart, and leave nothing behind`, () =>
    withApp({}, async ({ app, storage }) => {
      await expectError(
        await app.request("/v1/files", { method: "POST", body: "x", headers: { "content-type": "text/plain" } }),
        415,
      );
      const noFile = new FormData();
      noFile.append("purpose", "batch");
      await expectError(await postForm(app, noFile), 400, "file");
      await expectError(await upload(app, "x", {}), 400, "purpose");
      await expectError(await upload(app, "x", { purpose: "nonsense" }), 400, "purpose");
      await expectError(
        await app.request("/v1/files", {
          method: "POST",
          body: "--abc\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nunterminated",
          headers: { "content-type": "multipart/form-data; boundary=abc" },
        }),
        400,
      );
      await expectError(
        await app.request("/v1/files", {
          method: "POST",
          body: "garbage without any boundary",
          headers: { "content-type": "multipart/form-data; boundary=abc" },
        }),
        400,
      );
      assert.deepEqual((await storage.blobs.list("")).keys, []);
      assert.deepEqual((await storage.documents.list("tenants/")).keys, []);
    }));

  test(`${adapter.name}: files: over the size limits is a 413 and nothing half-written stays`, () =>
    withApp({ fileLimits: { maxFileBytes: 1000, maxBatchInputBytes: 500 } }, async ({ app, storage }) => {
      await expectError(await upload(app, "x".repeat(1001), { purpose: "user_data" }), 413, "file");
      // purpose sent after the file: the batch limit is applied once the purpose is known.
      const form = new FormData();
      form.append("file", new Blob(["y".repeat(600)]), "in.jsonl");
      form.append("purpose", "batch");
      await expectError(await postForm(app, form), 413, "file");
      await expectError(await upload(app, "z".repeat(600), { purpose: "batch" }), 413, "file");
      assert.deepEqual((await storage.blobs.list("")).keys, []);
      const ok = await upload(app, "x".repeat(1000), { purpose: "user_data" });
      assert.equal(ok.status, 200);
    }));

  test(`${adapter.name}: files: list filters by purpose, orders, and pages with after/limit`, () =>
    withApp({}, async ({ app }) => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const file = await (await upload(app, `f${i}`, { purpose: i % 2 ? "user_data" : "batch" })).json() as FileObject;
        ids.push(file.id);
      }
      const desc = await (await app.request("/v1/files")).json();
      assert.deepEqual(desc.data.map((f: FileObject) => f.id), [...ids].reverse());
      const asc = await (await app.request("/v1/files?order=asc&limit=2")).json();
      assert.deepEqual(asc.data.map((f: FileObject) => f.id), ids.slice(0, 2));
      assert.equal(asc.has_more, true);
      const next = await (await app.request(`/v1/files?order=asc&limit=2&after=${asc.last_id}`)).json();
      assert.deepEqual(next.data.map((f: FileObject) => f.id), ids.slice(2, 4));
      const batchOnly = await (await app.request("/v1/files?purpose=batch&order=asc")).json();
      assert.deepEqual(batchOnly.data.map((f: FileObject) => f.id), [ids[0], ids[2], ids[4]]);
      await expectError(await app.request("/v1/files?limit=0"), 400, "limit");
      await expectError(await app.request("/v1/files?limit=abc"), 400, "limit");
      await expectError(await app.request("/v1/files?order=sideways"), 400, "order");
      await expectError(await app.request("/v1/files?after=../../etc"), 400, "after");
    }));

  test(`${adapter.name}: ids from URLs are validated before they reach storage`, () =>
    withApp({}, async ({ app }) => {
      for (const id of ["..%2F..%2Fetc%2Fpasswd", "file-abc", "file-" + "0".repeat(36) + "%00", "%2e%2e"]) {
        await expectError(await app.request(`/v1/files/${id}`), 404);
        await expectError(await app.request(`/v1/files/${id}/content`), 404);
        await expectError(await app.request(`/v1/batches/${id.replace("file-", "batch_")}`), 404);
        await expectError(await app.request(`/v1/batches/${id}/cancel`, { method: "POST" }), 404);
      }
    }));

  test(`${adapter.name}: batches: create returns a validating Batch with every field; it validates, runs and completes`, () =>
    withApp({}, async (t) => {
      const created = await createBatchFrom(t, `${chatLine("a")}\n${chatLine("b")}\n`, { metadata: { project: "x" } });
      assert.deepEqual(Object.keys(created).sort(), BATCH_KEYS);
      assert.equal(created.status, "validating");
      assert.match(created.id, /^batch_[0-9a-f]{36}$/);
      assert.equal(created.expires_at, created.created_at + 86400);
      assert.deepEqual(created.metadata, { project: "x" });
      const done = await waitForBatch(t.app, created.id);
      assert.equal(done.status, "completed");
      assert.deepEqual(done.request_counts, { total: 2, completed: 2, failed: 0 });
      assert.equal(done.model, "test-model");
      for (const field of ["in_progress_at", "finalizing_at", "completed_at"] as const) {
        assert.equal(typeof done[field], "number", field);
      }
      assert.equal(done.failed_at, null);
      assert.ok(done.output_file_id);
      assert.equal(done.error_file_id, null, "an empty error file is not created");
      const output = await (await t.app.request(`/v1/files/${done.output_file_id}/content`)).text();
      const records = output.trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(records.map((r) => r.custom_id).sort(), ["a", "b"]);
      for (const record of records) {
        assert.deepEqual(Object.keys(record), ["id", "custom_id", "response", "error"]);
        assert.match(record.id, /^batch_req_/);
        assert.equal(record.response.status_code, 200);
        assert.equal(typeof record.response.body, "object");
        assert.equal(record.error, null);
      }
      const outputFile = await (await t.app.request(`/v1/files/${done.output_file_id}`)).json() as FileObject;
      assert.equal(outputFile.purpose, "batch_output");
      assert.equal(outputFile.bytes, new TextEncoder().encode(output).length);
    }));

  test(`${adapter.name}: batches: bad create parameters are 400s naming the param`, () =>
    withApp({}, async (t) => {
      const file = await (await upload(t.app, chatLine("a"))).json() as FileObject;
      const other = await (await upload(t.app, "x", { purpose: "user_data" })).json() as FileObject;
      const base = { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" };
      const cases: [Record<string, unknown>, string][] = [
        [{ ...base, input_file_id: undefined }, "input_file_id"],
        [{ ...base, endpoint: undefined }, "endpoint"],
        [{ ...base, completion_window: undefined }, "completion_window"],
        [{ ...base, input_file_id: "file-nope" }, "input_file_id"],
        [{ ...base, input_file_id: "file-" + "0".repeat(36) }, "input_file_id"],
        [{ ...base, input_file_id: other.id }, "input_file_id"],
        [{ ...base, endpoint: "/v1/images/generations" }, "endpoint"],
        [{ ...base, completion_window: "1d" }, "completion_window"],
        [{ ...base, completion_window: "0s" }, "completion_window"],
        [{ ...base, metadata: "x" }, "metadata"],
        [{ ...base, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"])) }, "metadata"],
        [{ ...base, metadata: { ["k".repeat(65)]: "v" } }, "metadata"],
        [{ ...base, metadata: { k: "v".repeat(513) } }, "metadata"],
        [{ ...base, metadata: { k: 1 } }, "metadata"],
        [{ ...base, output_expires_after: { anchor: "created_at", seconds: 10 } }, "output_expires_after.seconds"],
        [{ ...base, priority: 1.5 }, "priority"],
        [{ ...base, priority: "high" }, "priority"],
        [{ ...base, priority: 2_000_000 }, "priority"],
        [{ ...base, metadata: { priority: "high" } }, "metadata"],
        [{ ...base, priority: 3, metadata: { priority: "4" } }, "priority"],
        [{ ...base, max_concurrency: 0 }, "max_concurrency"],
        [{ ...base, metadata: { max_concurrency: "-2" } }, "metadata"],
      ];
      for (const [body, param] of cases) {
        await expectError(await postJson(t.app, "/v1/batches", body), 400, param);
      }
      await expectError(
        await t.app.request("/v1/batches", { method: "POST", body: "{not json", headers: { "content-type": "application/json" } }),
        400,
      );
      await expectError(
        await t.app.request("/v1/batches", { method: "POST", body: JSON.stringify(base), headers: { "content-type": "text/plain" } }),
        415,
      );
      const short = await postJson(t.app, "/v1/batches", { ...base, completion_window: "90s" });
      assert.equal(short.status, 200);
      const batch = await short.json() as BatchObject;
      assert.equal(batch.expires_at - batch.created_at, 90);
      assert.deepEqual([batch.priority, batch.max_concurrency, batch.paused_at], [0, null, null]);
      // The extensions in the body, or (for the unchanged SDKs) in the metadata, the same in both if both.
      const scheduled = await (await postJson(t.app, "/v1/batches", { ...base, priority: -3, metadata: { max_concurrency: " 8 ", priority: "-3" } })).json() as BatchObject;
      assert.deepEqual([scheduled.priority, scheduled.max_concurrency], [-3, 8]);
    }));

  test(`${adapter.name}: validation: every error is collected with its code, param and 1-based line, and the batch fails`, () =>
    withApp({}, async (t) => {
      const lines = [
        chatLine("ok-1"),
        "{not json",
        JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: {} }),
        JSON.stringify({ custom_id: "m", method: "GET", url: "/v1/chat/completions", body: {} }),
        JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/embeddings", body: {} }),
        chatLine("ok-1"),
        chatLine("s", "hi", { stream: true }),
        JSON.stringify({ custom_id: "nb", method: "POST", url: "/v1/chat/completions" }),
        "[1,2]",
      ];
      const created = await createBatchFrom(t, lines.join("\n"));
      const failed = await waitForBatch(t.app, created.id);
      assert.equal(failed.status, "failed");
      assert.equal(typeof failed.failed_at, "number");
      assert.equal(failed.in_progress_at, null);
      const found = failed.errors!.data.map((e) => [e.code, e.param, e.line]);
      assert.deepEqual(found, [
        ["invalid_json_line", null, 2],
        ["missing_required_parameter", "custom_id", 3],
        ["invalid_request", "method", 4],
        ["invalid_url", "url", 5],
        ["duplicate_custom_id", "custom_id", 6],
        ["streaming_unsupported", "body.stream", 7],
        ["missing_required_parameter", "body", 8],
        ["invalid_request", null, 9],
      ]);
      assert.equal(failed.output_file_id, null);
    }));

  test(`${adapter.name}: validation: an empty file and too many requests fail the batch`, () =>
    withApp({ validation: { maxRequests: 3 } }, async (t) => {
      const empty = await waitForBatch(t.app, (await createBatchFrom(t, "\n\n")).id);
      assert.equal(empty.status, "failed");
      assert.equal(empty.errors!.data[0].code, "empty_file");
      const big = await waitForBatch(
        t.app,
        (await createBatchFrom(t, ["a", "b", "c", "d"].map((id) => chatLine(id)).join("\n"))).id,
      );
      assert.equal(big.status, "failed");
      assert.deepEqual(big.errors!.data.map((e) => [e.code, e.line]), [["invalid_request", 4]]);
    }));

  test(`${adapter.name}: validation: CRLF line endings, a UTF-8 BOM and a trailing newline are fine`, () =>
    withApp({}, async (t) => {
      const content = "\uFEFF" + [chatLine("a"), chatLine("b"), chatLine("c")].join("\r\n") + "\r\n";
      const done = await waitForBatch(t.app, (await createBatchFrom(t, content)).id);
      assert.equal(done.status, "completed", JSON.stringify(done.errors));
      assert.deepEqual(done.request_counts, { total: 3, completed: 3, failed: 0 });
    }));

  test(`${adapter.name}: validation: errors beyond the cap are counted, not listed`, () =>
    withApp({ validation: { maxErrors: 2 } }, async (t) => {
      const failed = await waitForBatch(t.app, (await createBatchFrom(t, "x\ny\nz\nw")).id);
      assert.deepEqual(failed.errors!.data.map((e) => e.code), ["invalid_json_line", "invalid_json_line", "too_many_errors"]);
      assert.match(failed.errors!.data[2].message, /^2 more/);
    }));

  test(`${adapter.name}: batches: cancel or pause of an ended batch is 409, of an unknown one 404`, () =>
    withApp({}, async (t) => {
      const done = await waitForBatch(t.app, (await createBatchFrom(t, chatLine("a"))).id);
      const error = await expectError(await t.app.request(`/v1/batches/${done.id}/cancel`, { method: "POST" }), 409);
      assert.equal(error.message, "Cannot cancel a batch with status 'completed'.");
      await expectError(await t.app.request(`/v1/batches/batch_${"0".repeat(36)}/cancel`, { method: "POST" }), 404, "id");
      const notPaused = await expectError(await t.app.request(`/v1/batches/${done.id}/pause`, { method: "POST" }), 409);
      assert.equal(notPaused.message, "Cannot pause a batch with status 'completed'.");
      await expectError(await t.app.request(`/v1/batches/batch_${"0".repeat(36)}/pause`, { method: "POST" }), 404, "id");
      await expectError(await t.app.request(`/v1/batches/nope/resume`, { method: "POST" }), 404, "id");
      await expectError(await t.app.request(`/v1/batches/${done.id}/results?after=nonsense`), 400, "after");
      await expectError(await t.app.request(`/v1/batches/batch_${"0".repeat(36)}/results`), 404, "id");
      const results = await t.app.request(`/v1/batches/${done.id}/results`);
      assert.equal(results.headers.get("batchspool-complete"), "true");
      assert.deepEqual((await results.text()).trimEnd().split("\n").map((l) => JSON.parse(l).custom_id), ["a"]);
      const after = await t.app.request(`/v1/batches/${done.id}/results?after=${encodeURIComponent(results.headers.get("batchspool-next")!)}`);
      assert.equal(await after.text(), "");
      // Resuming a batch that is not paused changes nothing.
      const resumed = await (await t.app.request(`/v1/batches/${done.id}/resume`, { method: "POST" })).json() as BatchObject;
      assert.deepEqual(resumed, done);
    }));

  test(`${adapter.name}: batches: list is newest first with first_id, last_id, has_more and after`, () =>
    withApp({}, async (t) => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await createBatchFrom(t, chatLine(`a${i}`))).id);
      const newestFirst = [...ids].reverse();
      const first = await (await t.app.request("/v1/batches?limit=2")).json();
      assert.deepEqual(first.data.map((b: BatchObject) => b.id), newestFirst.slice(0, 2));
      assert.equal(first.first_id, newestFirst[0]);
      assert.equal(first.last_id, newestFirst[1]);
      assert.equal(first.has_more, true);
      const rest = await (await t.app.request(`/v1/batches?limit=100&after=${first.last_id}`)).json();
      assert.deepEqual(rest.data.map((b: BatchObject) => b.id), newestFirst.slice(2));
      assert.equal(rest.has_more, false);
      assert.equal((await (await t.app.request("/v1/batches")).json()).data.length, 5);
      await expectError(await t.app.request("/v1/batches?limit=101"), 400, "limit");
      await expectError(await t.app.request("/v1/batches?limit=0"), 400, "limit");
      await expectError(await t.app.request("/v1/batches?after=nope"), 400, "after");
    }));

  test(`${adapter.name}: auth: keys are required, checked, and each key sees only its own files and batches`, () =>
    withApp({ apiKeys: ["key-a", "key-b"] }, async (t) => {
      const a = { authorization: "Bearer key-a" };
      const b = { authorization: "Bearer key-b" };
      await expectError(await t.app.request("/v1/files"), 401, null, "missing_api_key");
      await expectError(await t.app.request("/v1/files", { headers: { authorization: "Bearer nope" } }), 401, null, "invalid_api_key");
      await expectError(await t.app.request("/v1/batches", { headers: { authorization: "Basic a2V5LWE=" } }), 401);
      const batch = await createBatchFrom(t, chatLine("x"), {}, a);
      const fileId = batch.input_file_id;
      for (const [method, path] of [
        ["GET", `/v1/files/${fileId}`],
        ["GET", `/v1/files/${fileId}/content`],
        ["DELETE", `/v1/files/${fileId}`],
        ["GET", `/v1/batches/${batch.id}`],
        ["POST", `/v1/batches/${batch.id}/cancel`],
      ]) {
        await expectError(await t.app.request(path, { method, headers: b }), 404);
      }
      await expectError(
        await postJson(t.app, "/v1/batches", { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" }, b),
        400,
        "input_file_id",
      );
      assert.deepEqual((await (await t.app.request("/v1/files", { headers: b })).json()).data, []);
      assert.deepEqual((await (await t.app.request("/v1/batches", { headers: b })).json()).data, []);
      const listedForA = (await (await t.app.request("/v1/files", { headers: a })).json()).data.map((f: FileObject) => f.id);
      assert.ok(listedForA.includes(fileId));
      assert.equal((await (await t.app.request(`/v1/batches/${batch.id}`, { headers: a })).status), 200);
    }));

  test(`${adapter.name}: health is 503 until the engine has recovered, then 200; /v1 waits too`, async () => {
    const t = await makeTestApp({ start: false });
    try {
      assert.equal((await t.app.request("/health")).status, 503);
      await expectError(await t.app.request("/v1/files"), 503);
      await t.engine.start();
      assert.equal((await t.app.request("/health")).status, 200);
      const health = await (await t.app.request("/health")).json();
      assert.deepEqual({ status: health.status, node_id: health.node_id }, { status: "ok", node_id: t.engine.nodeId });
      assert.deepEqual(health.upstreams.map((u: { upstream: string; in_flight: number }) => [u.upstream, u.in_flight]), [["default", 0]]);
    } finally {
      await t.close();
    }
  });

  test(`${adapter.name}: unknown routes get an OpenAI-shaped 404`, () =>
    withApp({}, async ({ app }) => {
      await expectError(await app.request("/v1/nothing"), 404, null, "unknown_url");
    }));

  test(`${adapter.name}: files: deleting a running batch's input removes it from the API at once, and its bytes when the batch ends`, () => {
    // Requests wait until the test lets them through, so the batch is surely running when its input is deleted.
    const mock = createMockTarget();
    let letThrough: () => void = () => {};
    const gate = new Promise<void>((resolve) => (letThrough = resolve));
    let sent = 0;
    const target: Target = { description: "gated", send: async (request) => (sent++, await gate, mock.send(request)) };
    return withApp({ target, concurrency: 1 }, async (t) => {
      const created = await createBatchFrom(t, ["a", "b", "c", "d", "e"].map((id) => chatLine(id)).join("\n"));
      while (sent === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      const deleted = await t.app.request(`/v1/files/${created.input_file_id}`, { method: "DELETE" });
      assert.equal(deleted.status, 200);
      const running = await t.engine.getBatch("default", created.id);
      assert.ok(running.status === "in_progress" && running.request_counts.completed < 5, "deleted while it ran");
      await expectError(await t.app.request(`/v1/files/${created.input_file_id}`), 404);
      assert.ok(await t.storage.blobs.stat(`files/${created.input_file_id}`), "its bytes stay while it runs");
      letThrough();
      const done = await waitForBatch(t.app, created.id);
      assert.equal(done.status, "completed");
      assert.deepEqual(done.request_counts, { total: 5, completed: 5, failed: 0 });
      // The batch reads `completed` as its last write lands; its input's bytes go right after.
      await eventually(async () => (await t.storage.blobs.stat(`files/${created.input_file_id}`)) === null, 10_000)
        .catch(() => assert.fail("the bytes are gone once it ended"));
    });
  });

  test(`${adapter.name}: validation: the scan made during upload (here or on a worker) and a full validation at creation report the same errors`, async () => {
    for (const scanUploadsOffThread of [false, true]) await withApp({ scanUploadsOffThread }, async (t) => {
      const lines = [
        chatLine("a"),
        JSON.stringify({ custom_id: "b", method: "POST", url: "/v1/embeddings", body: {} }),
        "{bad",
        chatLine("a"),
        JSON.stringify({ custom_id: "c", method: "GET", url: "/v1/responses", body: { stream: true } }),
      ].join("\n");
      const errorsVia = async (filename: string, fieldsFirst: boolean) => {
        const form = new FormData();
        if (fieldsFirst) form.append("purpose", "batch");
        form.append("file", new Blob([lines]), filename);
        if (!fieldsFirst) form.append("purpose", "batch");
        const file = await (await postForm(t.app, form)).json() as FileObject;
        const record = await t.engine.files.get("default", file.id);
        const batch = await (await postJson(t.app, "/v1/batches", {
          input_file_id: file.id,
          endpoint: "/v1/chat/completions",
          completion_window: "24h",
        })).json() as BatchObject;
        const failed = await waitForBatch(t.app, batch.id);
        return { scanned: record.scan !== undefined, errors: failed.errors!.data };
      };
      const scanned = await errorsVia("in.jsonl", true);
      const full = await errorsVia("in.txt", false);
      assert.equal(scanned.scanned, true);
      assert.equal(full.scanned, false);
      assert.deepEqual(scanned.errors, full.errors);
      assert.deepEqual(scanned.errors.map((e) => [e.code, e.line]), [
        ["invalid_url", 2],
        ["invalid_json_line", 3],
        ["duplicate_custom_id", 4],
        ["invalid_request", 5],
        ["streaming_unsupported", 5],
        ["invalid_url", 5],
      ]);
    });
  });

  test(`${adapter.name}: validation: a scanned input whose bytes changed before the batch was created fails as corrupted`, () =>
    withApp({}, async (t) => {
      const file = await (await upload(t.app, chatLine("a"))).json() as FileObject;
      await t.storage.blobs.put(`files/${file.id}`, new TextEncoder().encode(chatLine("b")));
      const batch = await (await postJson(t.app, "/v1/batches", {
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      })).json() as BatchObject;
      const failed = await waitForBatch(t.app, batch.id);
      assert.equal(failed.status, "failed");
      assert.equal(failed.errors!.data[0].code, "input_file_corrupted");
    }));
}
