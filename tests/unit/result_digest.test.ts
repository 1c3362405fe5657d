import assert from "node:assert/strict";
import { test } from "node:test";
import { createBatchEngine } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { RunningLogDigest } from "../../src/engine/ledger/local/running_log_digest.ts";
import { errorLogKey, outputLogKey } from "../../src/batch/model/storage_keys.ts";
import type { Target } from "../../src/targets/types.ts";
import { DEFAULT_MARK_EVERY, type MarkedDigest, MarkingSha256 } from "../../src/integrity/digest_marks.ts";
import { createFsStorage } from "../../src/storage/fs/fs_storage.ts";
import type { Storage } from "../../src/storage/types.ts";
import { writeCrashedBatch } from "../support/crashed_state.ts";
import { ended, line, OWNER, submit, waitUntil } from "../support/engine.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

/** The digest of a log's bytes as stored, read back whole. */
async function digestOfLog(storage: Storage, key: string): Promise<MarkedDigest> {
  const hash = new MarkingSha256(DEFAULT_MARK_EVERY);
  for await (const chunk of await storage.logs.read(key)) hash.update(chunk);
  return hash.finish();
}

/** An fs store whose log reads are counted per key. */
async function withCountedFsStorage(body: (storage: Storage, reads: Map<string, number>) => Promise<void>) {
  const dir = await tempDir();
  const inner = await createFsStorage({ dir });
  const reads = new Map<string, number>();
  const logs = {
    ...inner.logs,
    read: (key: string, from?: number) => {
      reads.set(key, (reads.get(key) ?? 0) + 1);
      return inner.logs.read(key, from);
    },
  };
  try {
    await body({ ...inner, logs }, reads);
  } finally {
    await inner.close();
    await removeDir(dir);
  }
}

/** Answers every line with a reply of multi-byte text (a line whose custom_id starts with "bad" gets a 400). */
const wordyTarget: Target = {
  description: "wordy",
  send: async (request) => {
    const { messages } = JSON.parse(request.bodyText) as { messages: { content: string }[] };
    const bad = messages[0].content.startsWith("bad");
    return {
      status: bad ? 400 : 200,
      body: bad
        ? { error: { message: "refused ✗", type: "invalid_request_error" } }
        : { choices: [{ message: { role: "assistant", content: `${messages[0].content}: ${"réponse 🚀 ".repeat(60)}` } }] },
      requestId: null,
      retryAfterMs: null,
      json: true,
    };
  },
};

test("RunningLogDigest: matches the log's bytes as the fs store wrote them, multi-byte records included", async () => {
  await withCountedFsStorage(async (storage) => {
    const digest = new RunningLogDigest();
    for (let group = 0; group < 40; group++) {
      const records = Array.from({ length: 100 }, (_, i) => JSON.stringify({ n: group * 100 + i, text: "é✓🚀".repeat(90) }));
      digest.follow(records, await storage.logs.append("log", records));
    }
    // Records longer than the digest's 64 KiB buffer, with four-byte characters across its edges.
    const long = [`a${"🚀".repeat(50_000)}`, "b", `${"é".repeat(70_001)}z`];
    digest.follow(long, await storage.logs.append("log", long));
    const kept = digest.finish();
    const stored = await digestOfLog(storage, "log");
    assert.ok(stored.marks.digests.length >= 1, "the log is long enough to carry marks");
    assert.deepEqual(kept, stored);
    assert.deepEqual(digest.finish(), stored, "asked again, the same answer");
  });
});

test("RunningLogDigest: an append it did not see, bytes that differ, or a lost append leave it unknown", () => {
  const gap = new RunningLogDigest();
  gap.follow(["a"], { start: 0, end: 2 });
  gap.follow(["b"], { start: 4, end: 6 });
  assert.equal(gap.finish(), null, "the second append did not start where the first ended");

  const resumed = new RunningLogDigest();
  resumed.follow(["a"], { start: 10, end: 12 });
  assert.equal(resumed.finish(), null, "the log held bytes before the first append it saw");

  const differing = new RunningLogDigest();
  differing.follow(["é"], { start: 0, end: 2 });
  assert.equal(differing.finish(), null, "the store wrote 2 bytes where the record and its newline are 3");

  const lost = new RunningLogDigest();
  lost.follow(["a"], { start: 0, end: 2 });
  lost.lose();
  assert.equal(lost.finish(), null);
});

test("finalize: result files carry the digest of their bytes, kept while writing: the logs are not read back", () =>
  withCountedFsStorage(async (storage, reads) => {
    const engine = createBatchEngine({ storage, target: wordyTarget, logger: silentLogger, checkpoints: false });
    await engine.start();
    try {
      const lines = Array.from({ length: 1500 }, (_, i) => line(i % 10 === 3 ? `bad-${i}` : `ok-é-${i}`, "m"));
      const batch = await submit(engine, lines);
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 1500, completed: 1350, failed: 150 });
      assert.equal(reads.get(outputLogKey(batch.id)) ?? 0, 0, "the output log was not read back");
      assert.equal(reads.get(errorLogKey(batch.id)) ?? 0, 0, "the error log was not read back");
      for (const [fileId, key] of [[done.output_file_id, outputLogKey(batch.id)], [done.error_file_id, errorLogKey(batch.id)]]) {
        const { sha256, file, marks } = await engine.files.get(OWNER, fileId!);
        assert.deepEqual({ sha256, bytes: file.bytes, marks }, await digestOfLog(storage, key!), key!);
      }
      assert.ok((await engine.files.get(OWNER, done.output_file_id!)).marks!.digests.length >= 1, "the output spans a mark");
    } finally {
      await engine.close();
    }
  }));

test("finalize: a batch resumed after a crash hashes its logs from their bytes, records written before the crash included", () =>
  withCountedFsStorage(async (storage, reads) => {
    const crashed = await writeCrashedBatch(storage, { count: 30, done: [1, 2, 3, 9], failed: [4] });
    const engine = createBatchEngine({ storage, target: wordyTarget, logger: silentLogger, checkpoints: false });
    await engine.start();
    try {
      const done = await waitUntil(engine, crashed.id, ended);
      assert.equal(done.status, "completed");
      for (const [fileId, key] of [[done.output_file_id, outputLogKey(crashed.id)], [done.error_file_id, errorLogKey(crashed.id)]]) {
        const { sha256, file, marks } = await engine.files.get(OWNER, fileId!);
        assert.deepEqual({ sha256, bytes: file.bytes, marks }, await digestOfLog(storage, key!), key!);
      }
      assert.ok((reads.get(outputLogKey(crashed.id)) ?? 0) >= 1);
    } finally {
      await engine.close();
    }
  }));
