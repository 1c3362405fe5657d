import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncedClock } from "../../src/shared/synced_clock.ts";
import { ManualClock } from "../support/clock.ts";

/**
 * A remote clock that runs at the local clock's rate from `start` (plus a `skew` the test sets),
 * counting its readings; `fail` makes readings throw.
 */
function source(start: number, local: ManualClock) {
  const state = { time: start, skew: 0, readings: 0, fail: false };
  const read = () => {
    state.readings++;
    if (state.fail) return Promise.reject(new Error("connection refused"));
    return Promise.resolve(state.time + local.monotonic() + state.skew);
  };
  return { state, read };
}

const DAY = 86_400_000;

test("synced clock: tells the source's time, advanced by the local monotonic clock, whatever the local wall clock says", async () => {
  const local = new ManualClock(Date.parse("2026-12-02T00:00:00Z")); // a day fast
  const remote = source(Date.parse("2026-12-01T00:00:00Z"), local);
  const clock = new SyncedClock(remote.read, { base: local, refreshMs: 60_000 });
  await clock.start();
  try {
    assert.equal(clock.now(), remote.state.time);
    assert.equal(local.now() - clock.now(), DAY);
    await local.advance(5_000);
    assert.equal(clock.now(), remote.state.time + 5_000);
    assert.equal(remote.state.readings, 1);
  } finally {
    clock.stop();
  }
});

test("synced clock: reads the source again on schedule, keeps its last reading when one fails, never tells time backwards", async () => {
  const local = new ManualClock();
  const remote = source(1_000_000, local);
  const clock = new SyncedClock(remote.read, { base: local, refreshMs: 60_000 });
  await clock.start();
  try {
    await local.advance(60_000);
    assert.equal(remote.state.readings, 2);
    assert.equal(clock.now(), 1_060_000);
    // The source moves 5 s ahead, but the reading fails: the local monotonic clock carries the last one.
    remote.state.fail = true;
    remote.state.skew = 5_000;
    await local.advance(60_000);
    assert.equal(remote.state.readings, 3);
    assert.equal(clock.now(), 1_120_000, "a failed reading keeps the last one");
    remote.state.fail = false;
    // The next reading is 100 ms behind what was told (a slower round trip, say): told time waits for it.
    remote.state.skew = -100;
    await clock.sync();
    assert.equal(remote.state.readings, 4);
    assert.equal(clock.now(), 1_120_000, "not 1,119,900: time is never told backwards");
    await local.advance(1_000);
    assert.equal(clock.now(), 1_120_900, "then it follows the new reading");
    clock.stop();
    await local.advance(600_000);
    assert.equal(remote.state.readings, 4, "stopped: no more readings");
    assert.equal(local.pending, 0);
  } finally {
    clock.stop();
  }
});
