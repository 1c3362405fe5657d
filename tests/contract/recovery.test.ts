import assert from "node:assert/strict";
import { appendFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { CheckpointStore, type EngineSnapshot } from "../../src/engine/ledger/local/checkpoints.ts";
import { createBatchEngine, type BatchEngine } from "../../src/engine/engine.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { type Target, TargetError, type TargetResponse } from "../../src/targets/types.ts";
import { batchDocKey, checkpointKey, fileBlobKey, outputLogKey } from "../../src/batch/model/storage_keys.ts";
import { sealEnvelope } from "../../src/integrity/envelope.ts";
import { createFsStorage } from "../../src/storage/fs/fs_storage.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";
import { FS, withStorage } from "../support/adapters.ts";
import { writeCrashedBatch } from "../support/crashed_state.ts";
import { allCustomIds, ended, OWNER, records, waitUntil } from "../support/engine.ts";
import { fsArea, logSegmentFile } from "../support/fs_layout.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info: ${m}`),
    warn: (m) => lines.push(`warn: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
  };
}

async function withFsStorage(body: (storage: Storage, dir: string) => Promise<void>) {
  const dir = await tempDir();
  const storage = await createFsStorage({ dir });
  try {
    await body(storage, dir);
  } finally {
    await storage.close();
    await removeDir(dir);
  }
}

async function startEngine(storage: Storage, logger: Logger, latencyMs = 0): Promise<BatchEngine> {
  const engine = createBatchEngine({
    storage,
    target: createMockTarget({ latencyMs }),
    logger,
    checkpoints: { intervalMs: 60_000 },
  });
  await engine.start();
  return engine;
}

test("recovery: a torn last record is cut away and that line is done again, once", () =>
  withFsStorage(async (storage, dir) => {
    const crashed = await writeCrashedBatch(storage, { count: 10, done: [1, 2, 3] });
    await storage.close();
    const torn = '{"id":"batch_req_00000000_4","custom_id":"line-4","response":{"status_co';
    await appendFile((await logSegmentFile(dir, outputLogKey(crashed.id))).path, torn);
    const reopened = await createFsStorage({ dir });
    const engine = await startEngine(reopened, recordingLogger());
    try {
      const done = await waitUntil(engine, crashed.id, ended);
      assert.deepEqual(done.request_counts, { total: 10, completed: 10, failed: 0 });
      const text = await new Response((await engine.files.content(OWNER, done.output_file_id!)).stream).text();
      assert.ok(!text.includes("status_co\n") && !text.includes('"status_co{'), "the torn bytes are gone");
      for (const line of text.trimEnd().split("\n")) JSON.parse(line);
      assert.deepEqual(await allCustomIds(engine, done), [...crashed.customIds].sort());
    } finally {
      await engine.close();
      await reopened.close();
    }
  }));

test("recovery: a status document half-written by a crash (temp file, no rename) leaves the old one in force", () =>
  withFsStorage(async (storage, dir) => {
    const crashed = await writeCrashedBatch(storage, { count: 5, done: [1] });
    await storage.close();
    const temps = await fsArea(dir, "docs", ".tmp");
    await writeFile(join(temps, "crashed"), '{"sha256":"00","payload":{"version":2,"value":{"batch":{"status":"comp');
    const reopened = await createFsStorage({ dir });
    assert.deepEqual(await readdir(temps), [], "the leftover temp file is removed");
    const engine = await startEngine(reopened, recordingLogger());
    try {
      const done = await waitUntil(engine, crashed.id, ended);
      assert.equal(done.status, "completed");
      assert.deepEqual(done.request_counts, { total: 5, completed: 5, failed: 0 });
    } finally {
      await engine.close();
      await reopened.close();
    }
  }));

test("recovery: a status document that fails its hash is reported and not trusted", () =>
  withFsStorage(async (storage, dir) => {
    const crashed = await writeCrashedBatch(storage, { count: 5, done: [] });
    await storage.close();
    const path = await fsArea(dir, "docs", batchDocKey(OWNER, crashed.id) + ".json");
    await writeFile(path, (await readFile(path, "utf8")).replace('"total":5', '"total":9'));
    const reopened = await createFsStorage({ dir });
    const logger = recordingLogger();
    const engine = await startEngine(reopened, logger);
    try {
      assert.ok(logger.lines.some((l) => l.startsWith(`error: batch ${crashed.id} was not resumed`) && l.includes("integrity")));
      assert.equal(await reopened.logs.length(outputLogKey(crashed.id)), 0, "nothing was sent for it");
    } finally {
      await engine.close();
      await reopened.close();
    }
  }));

test("recovery: an input file changed on disk fails its batch with a clear error instead of running it", () =>
  withFsStorage(async (storage, dir) => {
    const crashed = await writeCrashedBatch(storage, { count: 5, done: [1, 2] });
    await storage.close();
    const path = await fsArea(dir, "blobs", fileBlobKey(crashed.record.batch.input_file_id));
    await writeFile(path, (await readFile(path, "utf8")).replace("line-5", "line-X"));
    const reopened = await createFsStorage({ dir });
    const engine = await startEngine(reopened, recordingLogger());
    try {
      const failed = await waitUntil(engine, crashed.id, ended);
      assert.equal(failed.status, "failed");
      assert.equal(failed.errors?.data[0].code, "input_file_corrupted");
      assert.equal(failed.request_counts.completed, 2, "finished results are kept");
      assert.ok(failed.output_file_id);
    } finally {
      await engine.close();
      await reopened.close();
    }
  }));

test("recovery: an input changed in a later stretch runs the lines before it, none from it on, then fails", () =>
  withFsStorage(async (storage, dir) => {
    const markEvery = 1024;
    const crashed = await writeCrashedBatch(storage, { count: 60, done: [1, 2], markEvery });
    await storage.close();
    const path = await fsArea(dir, "blobs", fileBlobKey(crashed.record.batch.input_file_id));
    const original = await readFile(path, "utf8");
    await writeFile(path, original.replace('"line-45"', '"line-X5"'));
    // Lines wholly inside the stretches before the changed one may run; the rest may not.
    const stretchStart = Math.floor(original.indexOf('"line-45"') / markEvery) * markEvery;
    let offset = 0;
    const lineEnds = original.split("\n").slice(0, -1).map((text) => (offset += text.length + 1));
    const runnable = crashed.customIds.filter((_, i) => lineEnds[i] <= stretchStart && i >= 2);
    assert.ok(runnable.length > 5 && runnable.length < 40, `${runnable.length} lines before the changed stretch`);
    const sent: string[] = [];
    const mock = createMockTarget({});
    const recording: Target = {
      description: "mock, recording what it is sent",
      send(request) {
        sent.push(JSON.parse(request.bodyText).messages[0].content);
        return mock.send(request);
      },
    };
    const reopened = await createFsStorage({ dir });
    const engine = createBatchEngine({ storage: reopened, target: recording, logger: recordingLogger(), checkpoints: { intervalMs: 60_000 } });
    await engine.start();
    try {
      const failed = await waitUntil(engine, crashed.id, ended);
      assert.equal(failed.status, "failed");
      assert.equal(failed.errors?.data[0].code, "input_file_corrupted");
      assert.deepEqual(sent.sort(), [...runnable].sort(), "exactly the lines of the unchanged stretches were sent");
      assert.equal(failed.request_counts.completed, 2 + runnable.length, "their results and the earlier ones are kept");
      assert.deepEqual(await allCustomIds(engine, failed), ["line-1", "line-2", ...runnable].sort());
    } finally {
      await engine.close();
      await reopened.close();
    }
  }));

/** A target that answers only as many requests as the test allows; the rest wait (and obey aborts). */
function gatedTarget(): { target: Target; allow(n: number): void } {
  let credit = 0;
  const waiting: (() => void)[] = [];
  const answer = (): TargetResponse => ({
    status: 200,
    body: { usage: { total_tokens: 1 } },
    requestId: null,
    retryAfterMs: null,
    json: true,
  });
  return {
    target: {
      description: "gated",
      send: (request) =>
        new Promise((resolve, reject) => {
          if (credit > 0) {
            credit--;
            return resolve(answer());
          }
          const go = () => {
            request.signal.removeEventListener("abort", onAbort);
            resolve(answer());
          };
          const onAbort = () => {
            waiting.splice(waiting.indexOf(go), 1);
            reject(new TargetError("aborted", "the request was aborted"));
          };
          request.signal.addEventListener("abort", onAbort, { once: true });
          waiting.push(go);
        }),
    },
    allow(n: number) {
      for (let i = 0; i < n; i++) {
        const next = waiting.shift();
        if (next) next();
        else credit++;
      }
    },
  };
}

/** Runs a batch until exactly 6, then 12, then 16 lines are done, checkpointing, then stops the engine. */
async function checkpointedState(storage: Storage) {
  const crashed = await writeCrashedBatch(storage, { count: 40, done: [] });
  const gate = gatedTarget();
  const engine = createBatchEngine({
    storage,
    target: gate.target,
    logger: recordingLogger(),
    concurrency: 2,
    checkpoints: { intervalMs: 60_000, keep: 5 },
    shutdownGraceMs: 0,
  });
  await engine.start();
  try {
    gate.allow(6);
    await waitUntil(engine, crashed.id, (b) => b.request_counts.completed === 6);
    assert.equal(await engine.checkpoint(), 1);
    gate.allow(6);
    await waitUntil(engine, crashed.id, (b) => b.request_counts.completed === 12);
    assert.equal(await engine.checkpoint(), 2);
    gate.allow(4);
    await waitUntil(engine, crashed.id, (b) => b.request_counts.completed === 16);
  } finally {
    await engine.close(); // writes checkpoint 3 on the way out
  }
  return crashed;
}

test("recovery: with every checkpoint corrupted it falls back to a full scan of the logs", () =>
  withFsStorage(async (storage, dir) => {
    const crashed = await checkpointedState(storage);
    for (const name of await readdir(await fsArea(dir, "docs", "checkpoints"))) {
      await writeFile(await fsArea(dir, "docs", "checkpoints", name), "garbage");
    }
    const logger = recordingLogger();
    const engine = await startEngine(storage, logger);
    try {
      assert.equal(logger.lines.filter((l) => l.startsWith("warn: checkpoint")).length, 3);
      assert.ok(logger.lines.some((l) => l.includes("full scan")), logger.lines.join("\n"));
      const done = await waitUntil(engine, crashed.id, ended);
      assert.deepEqual(done.request_counts, { total: 40, completed: 40, failed: 0 });
      assert.deepEqual(await allCustomIds(engine, done), [...crashed.customIds].sort());
    } finally {
      await engine.close();
    }
  }));

test("CheckpointStore keeps the last N, loads the newest valid one, and continues numbering after a restart", async () => {
  const storage = createMemoryStorage();
  const logger = recordingLogger();
  const snapshot = (n: number): EngineSnapshot => ({
    format: 1,
    nodeId: "n",
    createdAt: n,
    queued: [],
    batches: {},
    metadata: { n },
  });
  const first = new CheckpointStore(storage, { keep: 2, logger });
  for (let i = 1; i <= 4; i++) assert.equal(await first.save(snapshot(i)), i);
  assert.deepEqual(await first.sequences(), [4, 3]);
  const second = new CheckpointStore(storage, { keep: 2, logger });
  assert.equal(await second.save(snapshot(5)), 5);
  assert.deepEqual(await second.sequences(), [5, 4]);
  await storage.documents.put(checkpointKey(5), { envelope: sealEnvelope(snapshot(5)).replace('"n":5', '"n":6') });
  const latest = await second.loadLatest();
  assert.equal(latest?.sequence, 4);
  assert.deepEqual(latest?.snapshot.metadata, { n: 4 });
  assert.throws(() => new CheckpointStore(storage, { keep: 0, logger }), RangeError);
});

// The local ledger's recoveries, from states written as a crash leaves them (a PostgreSQL ledger's restart is in
// the engine contract, and its crashes in tests/process/crash.test.ts).
for (const adapter of [FS]) {
  test(`local ledger on ${adapter.name}: recovery: an in-progress batch resumes where it stopped and ends with every line exactly once`, () =>
    withStorage(adapter, async (storage) => {
      const crashed = await writeCrashedBatch(storage, { count: 50, done: [1, 2, 3, 10, 20], failed: [4] });
      const logger = recordingLogger();
      const engine = await startEngine(storage, logger);
      try {
        const done = await waitUntil(engine, crashed.id, ended);
        assert.equal(done.status, "completed");
        assert.deepEqual(done.request_counts, { total: 50, completed: 49, failed: 1 });
        assert.deepEqual(await allCustomIds(engine, done), [...crashed.customIds].sort());
        assert.ok(logger.lines.some((l) => l.includes("resumed at 6/50") && l.includes("full scan")), logger.lines.join("\n"));
        const resent = (await records(engine, done.output_file_id)).filter((r) => (r.response as { request_id: string | null }).request_id !== null);
        assert.equal(resent.length, 44, "only the 44 unfinished lines were sent");
      } finally {
        await engine.close();
      }
    }));

  test(`local ledger on ${adapter.name}: recovery: a cancel request survives a restart`, () =>
    withStorage(adapter, async (storage) => {
      const crashed = await writeCrashedBatch(storage, { count: 20, done: [1, 2], status: "cancelling" });
      const engine = await startEngine(storage, recordingLogger());
      try {
        const done = await waitUntil(engine, crashed.id, ended);
        assert.equal(done.status, "cancelled");
        assert.deepEqual(done.request_counts, { total: 20, completed: 2, failed: 0 });
      } finally {
        await engine.close();
      }
  }));

  test(`local ledger on ${adapter.name}: recovery: an expiry deadline that passed while down expires the batch at start`, () =>
    withStorage(adapter, async (storage) => {
      const crashed = await writeCrashedBatch(storage, {
        count: 8,
        done: [1, 2, 3],
        expiresAt: Math.floor(Date.now() / 1000) - 5,
      });
      const engine = await startEngine(storage, recordingLogger());
      try {
        const done = await waitUntil(engine, crashed.id, ended);
        assert.equal(done.status, "expired");
        assert.deepEqual(done.request_counts, { total: 8, completed: 3, failed: 5 });
        const errors = await records(engine, done.error_file_id);
        assert.ok(errors.every((r) => (r.error as { code: string }).code === "batch_expired"));
        assert.deepEqual(await allCustomIds(engine, done), [...crashed.customIds].sort());
      } finally {
        await engine.close();
      }
  }));

  test(`local ledger on ${adapter.name}: recovery: a checkpoint with a bad hash is skipped for the one before, and only the logs' tails are read`, () =>
    withStorage(adapter, async (storage) => {
      const crashed = await checkpointedState(storage);
      const newest = await storage.documents.get<{ envelope: string }>(checkpointKey(3));
      assert.ok(newest);
      await storage.documents.put(checkpointKey(3), { envelope: newest.value.envelope.replace('"format":1', '"format":2') });
      const logger = recordingLogger();
      const engine = await startEngine(storage, logger);
      try {
        assert.ok(logger.lines.some((l) => l.startsWith("warn: checkpoint 3 is corrupted")), logger.lines.join("\n"));
        assert.ok(logger.lines.includes("info: recovering from checkpoint 2"), logger.lines.join("\n"));
        assert.ok(logger.lines.some((l) => l.includes("checkpoint + ") && l.includes("log bytes")), logger.lines.join("\n"));
        const done = await waitUntil(engine, crashed.id, ended);
        assert.deepEqual(done.request_counts, { total: 40, completed: 40, failed: 0 });
        assert.deepEqual(await allCustomIds(engine, done), [...crashed.customIds].sort());
      } finally {
        await engine.close();
      }
    }));

  test(`local ledger on ${adapter.name}: recovery: an active-index entry whose batch was never written (crash inside create) is dropped`, () =>
    withStorage(adapter, async (storage) => {
      await storage.documents.put(`active/batch_${"0".repeat(36)}`, { owner: "default" });
      const engine = await startEngine(storage, recordingLogger());
      try {
        assert.deepEqual((await storage.documents.list("active/")).keys, []);
      } finally {
        await engine.close();
      }
  }));
}

test("recovery: a validation claimed between a batch's ledger entry and its document waits for the document, not for a clock", async () => {
  const storage = createMemoryStorage();
  // The first batch's document is held back until a node has looked for it and found nothing.
  let held: string | null = null;
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const documents = storage.documents;
  const gated: Storage = {
    ...storage,
    documents: {
      ...documents,
      async put(key, value, condition) {
        if (held === null && key.startsWith(batchDocKey(OWNER, "batch_").slice(0, -"batch_".length)) && condition?.ifVersion === 0) {
          held = key;
          await released;
        }
        return await documents.put(key, value, condition);
      },
      async get<T>(key: string) {
        const found = await documents.get<T>(key);
        if (key === held && found === null) release();
        return found;
      },
    },
  };
  // A clock that never moves: a validation put off by a backoff would never run.
  const frozen = { now: () => Date.now(), monotonic: () => 0, setTimeout: () => ({}), clearTimeout: () => {} };
  const engine = createBatchEngine({ storage: gated, target: createMockTarget(), logger: recordingLogger(), clock: frozen, checkpoints: false });
  await engine.start();
  try {
    const upload = async (id: string) => {
      const received = await engine.files.receive({
        owner: OWNER,
        filename: "in.jsonl",
        purpose: "batch",
        content: new TextEncoder().encode(JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } })),
      });
      return (await engine.files.commit(received, { purpose: "batch" })).id;
    };
    const create = (fileId: string) => engine.createBatch(OWNER, { input_file_id: fileId, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const [first, second] = [await upload("a"), await upload("b")];
    const creating = create(first); // its document waits at the gate
    // Another batch's creation tells the node there is work: it claims both validations.
    const other = await create(second);
    const firstBatch = await creating;
    for (const id of [firstBatch.id, other.id]) {
      const done = await waitUntil(engine, id, ended, 20_000);
      assert.equal(done.status, "completed", id);
    }
    assert.notEqual(held, null, "the first document was held back");
  } finally {
    await engine.close();
    await storage.close();
  }
});
