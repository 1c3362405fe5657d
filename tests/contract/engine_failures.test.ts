/**
 * What the engine does when a batch's step throws: storage that can heal is
 * retried, a conflict re-reads the version, anything else fails the batch once
 * with a reason; and a target that cannot send fails fast.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { fileBlobKey } from "../../src/batch/model/storage_keys.ts";
import { type BatchEngineOptions, createBatchEngine, LEFTOVER_SWEEP_MS } from "../../src/engine/engine.ts";
import { createHttpTarget } from "../../src/targets/http_target.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { type Target, TargetError } from "../../src/targets/types.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { StorageError } from "../../src/storage/errors.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";
import { ManualClock } from "../support/clock.ts";
import { allCustomIds, ended, line, OWNER, records, submit, uploadInput, waitUntil } from "../support/engine.ts";
import { databaseUrl, openTestPostgresStorage } from "../support/postgres.ts";
import { startUpstream } from "../support/upstream.ts";

/** A logger that keeps every line, by level. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
  };
}

async function withEngine(
  options: Partial<BatchEngineOptions> & Pick<BatchEngineOptions, "target">,
  body: (engine: ReturnType<typeof createBatchEngine>, logger: ReturnType<typeof recordingLogger>) => Promise<void>,
) {
  const storage = options.storage ?? createMemoryStorage();
  const logger = recordingLogger();
  const engine = createBatchEngine({ logger, checkpoints: false, stepRetry: { baseMs: 5, maxMs: 20 }, ...options, storage });
  await engine.start();
  try {
    await body(engine, logger);
  } finally {
    await engine.close();
    await storage.close();
  }
}

test("step failures: a programming error fails the batch once, saying what happened, and keeps the results so far", async () => {
  const mock = createMockTarget();
  let sent = 0;
  const target: Target = {
    description: "breaks on the fourth request",
    send: (request) => {
      if (++sent === 4) throw new TypeError("Cannot read properties of undefined (reading 'choices')");
      return mock.send(request);
    },
  };
  await withEngine({ target, concurrency: 1 }, async (engine, logger) => {
    const batch = await submit(engine, Array.from({ length: 20 }, (_, i) => line(`p${i}`, "m")));
    const done = await waitUntil(engine, batch.id, ended);
    assert.equal(done.status, "failed");
    assert.equal(done.errors!.data.length, 1);
    assert.equal(done.errors!.data[0].code, "internal_error");
    assert.match(done.errors!.data[0].message, /reading 'choices'/);
    assert.deepEqual(done.request_counts, { total: 20, completed: 3, failed: 0 });
    assert.deepEqual((await records(engine, done.output_file_id)).map((r) => r.custom_id), ["p0", "p1", "p2"]);
    assert.equal(sent, 4, "nothing more was sent after the failure");
    assert.equal(logger.lines.filter((l) => l.includes("reading 'choices'")).length, 1, "reported once");
  });
});

test("step failures: a target that cannot send as configured fails the batch after one request, not five per line", async () => {
  let sent = 0;
  const target: Target = {
    description: "misconfigured",
    send: () => {
      sent++;
      throw new TargetError("misconfigured", "invalid header \"x-team\"");
    },
  };
  await withEngine({ target, concurrency: 1, maxRetries: 5 }, async (engine) => {
    const batch = await submit(engine, Array.from({ length: 10 }, (_, i) => line(`m${i}`, "m")));
    const done = await waitUntil(engine, batch.id, ended);
    assert.equal(done.status, "failed");
    assert.equal(done.errors!.data[0].code, "target_misconfigured");
    assert.match(done.errors!.data[0].message, /invalid header/);
    assert.equal(sent, 1);
  });
  // The HTTP target refuses such a configuration when it is made.
  assert.throws(
    () => createHttpTarget({ baseUrl: "http://127.0.0.1:1/v1", headers: { "x-team": "a\r\nx-evil: 1" } }),
    (error) => error instanceof TargetError && error.code === "misconfigured",
  );
  assert.throws(() => createHttpTarget({ baseUrl: "ftp://example.com/v1" }), (e) => e instanceof TargetError && e.code === "misconfigured");
  assert.throws(() => createHttpTarget({ baseUrl: "not a url" }), (e) => e instanceof TargetError && e.code === "misconfigured");
});

/** Memory storage whose document writes to the batch's key can be made to fail after writing. */
function storageWithFailingWrites(fail: (key: string) => "after-write" | null): Storage {
  const base = createMemoryStorage();
  return {
    ...base,
    documents: {
      ...base.documents,
      async put(key, value, condition) {
        const version = await base.documents.put(key, value, condition);
        // The write landed, but its caller hears an error (as when a rename lands and the fsync after it fails).
        if (fail(key) === "after-write") throw new StorageError("io", "simulated fsync failure after a rename", { key });
        return version;
      },
    },
  };
}

test("step failures: a write that landed but reported an error is retried; the version conflict it causes heals", async () => {
  // The batch document's second write (validated, in progress) lands but reports a failure.
  let writes = 0;
  const storage = storageWithFailingWrites((key) => (key.includes("/batches/") && ++writes === 2 ? "after-write" : null));
  await withEngine({ storage, target: createMockTarget() }, async (engine, logger) => {
    const ids = Array.from({ length: 30 }, (_, i) => `v${i}`);
    const batch = await submit(engine, ids.map((id) => line(id, "m")));
    const done = await waitUntil(engine, batch.id, ended);
    assert.equal(done.status, "completed", JSON.stringify(done.errors));
    assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
    const paused = logger.lines.filter((l) => l.includes("paused"));
    assert.equal(paused.length, 1, logger.lines.join("\n"));
    assert.ok(logger.lines.some((l) => l.includes("resumed")), logger.lines.join("\n"));
  });
});

test("step failures: storage that keeps failing is logged once while the batch waits, and the batch resumes when it heals", async () => {
  const base = createMemoryStorage();
  let failing = true;
  let attempts = 0;
  const storage: Storage = {
    ...base,
    logs: {
      ...base.logs,
      async append(key, records) {
        if (failing) {
          attempts++;
          throw new StorageError("io", "ENOSPC: no space left on device", { key });
        }
        return base.logs.append(key, records);
      },
    },
  };
  await withEngine({ storage, target: createMockTarget() }, async (engine, logger) => {
    const ids = Array.from({ length: 40 }, (_, i) => `d${i}`);
    const batch = await submit(engine, ids.map((id) => line(id, "m")));
    // Several attempts fail (each one a retry after backoff), then space comes back.
    while (attempts < 4) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal((await engine.getBatch("default", batch.id)).status, "in_progress");
    failing = false;
    const done = await waitUntil(engine, batch.id, ended);
    assert.equal(done.status, "completed");
    assert.deepEqual(await allCustomIds(engine, done), [...ids].sort());
    assert.equal(logger.lines.filter((l) => l.includes("ENOSPC")).length, 1, "logged once, not at every retry");
  });
});

test("step failures: corrupted state fails the batch with storage_corrupted instead of looping", async () => {
  const base = createMemoryStorage();
  const storage: Storage = {
    ...base,
    logs: {
      ...base.logs,
      append: (key) => Promise.reject(new StorageError("corrupt", "log failed its integrity check", { key })),
    },
  };
  await withEngine({ storage, target: createMockTarget() }, async (engine) => {
    const batch = await submit(engine, [line("c1", "m"), line("c2", "m")]);
    const done = await waitUntil(engine, batch.id, ended);
    assert.equal(done.status, "failed");
    assert.equal(done.errors!.data[0].code, "storage_corrupted");
  });
});

test("step failures: an input that lost bytes in the database fails its batch with input_file_corrupted, at once", async () => {
  const storage = await openTestPostgresStorage();
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  let sent = 0;
  const mock = createMockTarget();
  const target: Target = { description: "mock, counting", send: (request) => (sent++, mock.send(request)) };
  try {
    await withEngine({ storage, target }, async (engine) => {
      const lines = Array.from({ length: 300 }, (_, i) => line(`h${i}`, "m", { padding: "x".repeat(60) }));
      const fileId = await uploadInput(engine, lines);
      // Its second chunk of bytes is gone, behind batchspool's back.
      await sql`delete from ${sql(storage.schema)}.blob_chunks where seq = 1
        and upload_id = (select upload_id from ${sql(storage.schema)}.blobs where key = ${fileBlobKey(fileId)})`;
      const batch = await engine.createBatch(OWNER, { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" });
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "failed");
      assert.equal(done.errors!.data.length, 1);
      assert.equal(done.errors!.data[0].code, "input_file_corrupted");
      assert.equal(done.errors!.data[0].param, "input_file_id");
      assert.match(done.errors!.data[0].message, /cannot be read in full.*bytes 8000–15999/);
      assert.equal(sent, 0, "nothing was sent: the input could not be cut");
    });
  } finally {
    await sql.end();
  }
});

test("leftovers: the engine asks its storage to remove what dead writers left, on its clock's schedule", async () => {
  const clock = new ManualClock();
  let sweeps = 0;
  const storage: Storage = { ...createMemoryStorage(), removeLeftovers: () => Promise.resolve(++sweeps && 0) };
  await withEngine({ storage, target: createMockTarget(), clock }, async () => {
    assert.equal(sweeps, 0, "the store removed its leftovers when it opened");
    await clock.advance(LEFTOVER_SWEEP_MS - 1);
    assert.equal(sweeps, 0);
    await clock.advance(1);
    assert.equal(sweeps, 1);
    await clock.advance(LEFTOVER_SWEEP_MS);
    assert.equal(sweeps, 2);
  });
});

test("response cap: an answer larger than the limit fails its line as response_too_large, without retries", async () => {
  const upstream = await startUpstream();
  try {
    const target = createHttpTarget({ baseUrl: upstream.baseUrl, maxResponseBytes: 10_000 });
    await withEngine({ target, maxRetries: 3 }, async (engine) => {
      const batch = await submit(engine, [line("small", "ok"), line("huge", "big:50000")]);
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 2, completed: 1, failed: 1 });
      const [failure] = await records(engine, done.error_file_id);
      assert.equal(failure.custom_id, "huge");
      assert.equal((failure.error as { code: string }).code, "response_too_large");
      assert.match((failure.error as { message: string }).message, /10000 bytes/);
      assert.equal(upstream.requests.filter((r) => r.prompt === "huge").length, 1);
    });
  } finally {
    await upstream.close();
  }
});
