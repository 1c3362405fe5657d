import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchProgress } from "../src/batch/progress.ts";
import { createResultWriter } from "../src/batch/result_writer.ts";
import { createMemoryStorage } from "../src/storage/memory.ts";
import type { Storage } from "../src/storage/types.ts";

/** A memory store whose appends take `appendMs` and are recorded (start time, number of records). */
function recordingStorage(appendMs: number): { storage: Storage; appends: { at: number; records: number }[] } {
  const inner = createMemoryStorage();
  const appends: { at: number; records: number }[] = [];
  const logs = {
    ...inner.logs,
    append: async (key: string, records: readonly string[]) => {
      appends.push({ at: performance.now(), records: records.length });
      await new Promise((resolve) => setTimeout(resolve, appendMs));
      return inner.logs.append(key, records);
    },
  };
  return { storage: { ...inner, logs }, appends };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const record = (line: number) => ({ line, record: JSON.stringify({ id: `r${line}` }) });

test("result writer: results that keep arriving are appended in groups spaced apart, not one append per flush", async () => {
  const { storage, appends } = recordingStorage(1);
  const lines = 400;
  const writer = createResultWriter(storage, "batch_1", new BatchProgress(lines));
  for (let line = 1; line <= lines; line++) {
    writer.add("output", record(line));
    if (line % 4 === 0) await sleep(0);
  }
  // Waiting sends the last group at once (see the test below): the spacing holds for the appends before it.
  const beforeWaiting = appends.length;
  await writer.below(1);
  assert.equal(appends.reduce((sum, append) => sum + append.records, 0), lines);
  assert.ok(beforeWaiting >= 10, `${beforeWaiting} appends while results arrived`);
  for (let i = 1; i < beforeWaiting; i++) {
    // 10 ms apart, less a little slack for timers that fire early (without the spacing: ~1–2 ms).
    assert.ok(appends[i].at - appends[i - 1].at >= 8, `appends ${i - 1} and ${i} are ${appends[i].at - appends[i - 1].at} ms apart`);
  }
});

test("result writer: a full group does not wait for the pause between appends", async () => {
  const { storage, appends } = recordingStorage(1);
  const writer = createResultWriter(storage, "batch_1", new BatchProgress(2000));
  writer.add("output", record(1));
  while (appends.length === 0) await sleep(1);
  // Arrives during the first append: the writer then pauses before the next one…
  writer.add("output", record(2));
  await sleep(2);
  // …unless a full group (512) is waiting.
  for (let line = 3; line <= 600; line++) writer.add("output", record(line));
  await writer.below(1);
  assert.deepEqual(appends.map((append) => append.records), [1, 599]);
  assert.ok(appends[1].at - appends[0].at < 8, `the full group waited ${appends[1].at - appends[0].at} ms`);
});

/** A memory store whose appends are recorded and each wait for `release()`. */
function gatedStorage(): { storage: Storage; appends: number[]; release(): void } {
  const inner = createMemoryStorage();
  const appends: number[] = [];
  const gates: (() => void)[] = [];
  const logs = {
    ...inner.logs,
    append: async (key: string, records: readonly string[]) => {
      appends.push(records.length);
      await new Promise<void>((resolve) => gates.push(resolve));
      return inner.logs.append(key, records);
    },
  };
  return { storage: { ...inner, logs }, appends, release: () => gates.shift()?.() };
}

test("result writer: waiting for every result ends the pause: the last group of a batch does not linger", async () => {
  const { storage, appends, release } = gatedStorage();
  const writer = createResultWriter(storage, "batch_1", new BatchProgress(10));
  writer.add("output", record(1));
  writer.add("output", record(2));
  const room = writer.below(2);
  assert.equal(appends.length, 0, "results wait for company, also while someone waits for room");
  const first = writer.below(1);
  assert.deepEqual(appends, [2], "until someone waits for all of them");
  // Arrives during that append, and is waited for: it follows as soon as the append is durable.
  writer.add("output", record(3));
  const second = writer.below(1);
  release();
  await room;
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(appends, [2, 1], "no pause between the two appends");
  release();
  await Promise.all([first, second]);
});
