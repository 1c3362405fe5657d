import assert from "node:assert/strict";
import { test } from "node:test";
import { createEventLoopShare } from "../../src/engine/lines/event_loop_share.ts";
import { RequestDeadlines } from "../../src/targets/request_deadlines.ts";
import { ManualClock } from "../support/clock.ts";

test("RequestDeadlines: a request past its timeout aborts as timed out; one done in time never does", async () => {
  const clock = new ManualClock();
  const deadlines = new RequestDeadlines(100, clock);
  const outer = new AbortController().signal;
  const quick = deadlines.start(outer);
  const slow = deadlines.start(outer);
  await clock.advance(10);
  quick.done();
  await clock.advance(80);
  const later = deadlines.start(outer);
  await clock.advance(9);
  assert.equal(slow.signal.aborted, false, "not before its time");
  await clock.advance(1);
  assert.equal(slow.timedOut(), true);
  assert.equal((slow.signal.reason as DOMException).name, "TimeoutError");
  assert.equal(quick.signal.aborted, false);
  // Started 90 ms after the first: its own deadline, not the first one's.
  assert.equal(later.signal.aborted, false);
  await clock.advance(89);
  assert.equal(later.signal.aborted, false);
  await clock.advance(1);
  assert.equal(later.timedOut(), true);
  assert.equal(quick.signal.aborted, false);
  assert.equal(clock.pending, 0, "no timer left once every request is over");
});

test("RequestDeadlines: the caller's abort reaches every request started with that signal, and no other", async () => {
  const deadlines = new RequestDeadlines(10_000);
  const batchA = new AbortController();
  const batchB = new AbortController();
  const a1 = deadlines.start(batchA.signal);
  const a2 = deadlines.start(batchA.signal);
  const b1 = deadlines.start(batchB.signal);
  const finished = deadlines.start(batchA.signal);
  finished.done();
  batchA.abort(new Error("cancelled"));
  assert.equal(a1.signal.aborted && a2.signal.aborted, true);
  assert.equal((a1.signal.reason as Error).message, "cancelled");
  assert.equal(a1.timedOut(), false);
  assert.equal(finished.signal.aborted, false);
  assert.equal(b1.signal.aborted, false);
  const afterwards = deadlines.start(batchA.signal);
  assert.equal(afterwards.signal.aborted, true);
  b1.done();
  a1.done();
  a2.done();
});

test("RequestDeadlines: onAbort callbacks fire once, for timeouts and the caller's abort, never after done", async () => {
  const clock = new ManualClock();
  const deadlines = new RequestDeadlines(60, clock);
  const batch = new AbortController();
  const calls: string[] = [];
  const note = (name: string) => (reason: unknown) => calls.push(`${name}:${(reason as Error).name ?? reason}`);
  const timesOut = deadlines.start(new AbortController().signal);
  timesOut.onAbort(note("timeout"));
  const cancelled = deadlines.start(batch.signal);
  cancelled.onAbort(note("cancel"));
  const finished = deadlines.start(batch.signal);
  finished.onAbort(note("finished"));
  finished.done();
  batch.abort(new RangeError("cancelled"));
  await clock.advance(120);
  assert.deepEqual(calls.sort(), ["cancel:RangeError", "timeout:TimeoutError"]);
  assert.equal(timesOut.timedOut(), true);
  // A signal asked for after the abort is already aborted, with the same reason.
  assert.equal((timesOut.signal.reason as DOMException).name, "TimeoutError");
  assert.equal(cancelled.signal.aborted, true);
  assert.equal(finished.signal.aborted, false);
  // Started after the caller's abort: the callback runs at once.
  const late = deadlines.start(batch.signal);
  late.onAbort(note("late"));
  assert.deepEqual(calls.at(-1), "late:RangeError");
});

test("createEventLoopShare: a loop of promise continuations lets a timer run within its slice", async () => {
  const share = createEventLoopShare(4);
  let timerRan = false;
  setTimeout(() => (timerRan = true), 0);
  // Without the share this loop never yields to the event loop, so the timer
  // cannot run and the loop ends at its bound; a busy machine only delays it.
  const bound = performance.now() + 30_000;
  let continuations = 0;
  while (!timerRan && performance.now() < bound) {
    await Promise.resolve();
    continuations++;
    await share.share();
  }
  assert.equal(timerRan, true, "the timer ran while the loop was still going");
  assert.ok(continuations > 0);
});
