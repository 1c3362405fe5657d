import assert from "node:assert/strict";
import { test } from "node:test";
import { BatchProgress } from "../../src/engine/ledger/local/batch_progress.ts";
import { createResultWriter } from "../../src/engine/ledger/local/result_writer.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";
import { ManualClock, settle } from "../support/clock.ts";

/** A memory store whose appends are recorded (the clock's time, number of records) and each wait for `release()` when gated. */
function recordingStorage(clock: ManualClock, gated = false) {
  const inner = createMemoryStorage();
  const appends: { at: number; records: number }[] = [];
  const gates: (() => void)[] = [];
  const logs = {
    ...inner.logs,
    append: async (key: string, records: readonly string[]) => {
      appends.push({ at: clock.monotonic(), records: records.length });
      if (gated) await new Promise<void>((resolve) => gates.push(resolve));
      return inner.logs.append(key, records);
    },
  };
  return { storage: { ...inner, logs } as Storage, appends, release: () => gates.shift()?.() };
}

const record = (line: number) => ({ line, record: JSON.stringify({ id: `r${line}` }) });

test("result writer: results that keep arriving are appended in groups 10 ms apart, not one append per flush", async () => {
  const clock = new ManualClock();
  const { storage, appends } = recordingStorage(clock);
  const lines = 400;
  const writer = createResultWriter(storage, "batch_1", new BatchProgress(lines), clock);
  // Four results a millisecond, for 100 ms.
  for (let line = 1; line <= lines; line++) {
    writer.add("output", record(line));
    if (line % 4 === 0) await clock.advance(1);
  }
  // Waiting sends the last group at once (see the test below): the spacing holds for the appends before it.
  const beforeWaiting = appends.length;
  await writer.below(1);
  assert.equal(appends.reduce((sum, append) => sum + append.records, 0), lines);
  assert.ok(beforeWaiting >= 9, `${beforeWaiting} appends while results arrived for 100 ms`);
  for (let i = 1; i < beforeWaiting; i++) {
    assert.ok(appends[i].at - appends[i - 1].at >= 10, `appends ${i - 1} and ${i} are ${appends[i].at - appends[i - 1].at} ms apart`);
  }
  assert.equal(appends[0].at, 10, "the first result waits 10 ms for company");
});

test("result writer: a full group does not wait for the pause between appends", async () => {
  const clock = new ManualClock();
  const { storage, appends, release } = recordingStorage(clock, true);
  const writer = createResultWriter(storage, "batch_1", new BatchProgress(2000), clock);
  writer.add("output", record(1));
  await clock.advance(10);
  assert.equal(appends.length, 1);
  // Arrives during the first append: the writer then pauses before the next one…
  writer.add("output", record(2));
  release();
  await clock.advance(2);
  assert.equal(appends.length, 1, "the second waits for the pause");
  // …unless a full group (512) is waiting: then it goes at once, with no time passing.
  for (let line = 3; line <= 600; line++) writer.add("output", record(line));
  await settle();
  assert.deepEqual(appends.map((append) => append.records), [1, 599]);
  assert.equal(appends[1].at, 12, "appended when the group filled, not at the end of the pause");
  release();
  await writer.below(1);
});


test("result writer: waiting for every result ends the pause: the last group of a batch does not linger", async () => {
  const clock = new ManualClock();
  const recorded = recordingStorage(clock, true);
  const { storage, release } = recorded;
  const appends = () => recorded.appends.map((append) => append.records);
  const writer = createResultWriter(storage, "batch_1", new BatchProgress(10), clock);
  writer.add("output", record(1));
  writer.add("output", record(2));
  const room = writer.below(2);
  assert.deepEqual(appends(), [], "results wait for company, also while someone waits for room");
  const first = writer.below(1);
  assert.deepEqual(appends(), [2], "until someone waits for all of them");
  // Arrives during that append, and is waited for: it follows as soon as the append is durable.
  writer.add("output", record(3));
  const second = writer.below(1);
  release();
  await room;
  await settle();
  assert.deepEqual(appends(), [2, 1], "no pause between the two appends, and no time passed");
  release();
  await Promise.all([first, second]);
});
