import assert from "node:assert/strict";
import { test } from "node:test";
import { Dispatcher, type Lease, type QueueSpec } from "../../src/engine/lines/dispatcher.ts";
import { backoffDelay } from "../../src/engine/lines/backoff.ts";
import { retryAfterMs } from "../../src/targets/retry_after.ts";
import { ManualClock, settle } from "../support/clock.ts";

test("Dispatcher never has more leases out than its concurrency", async () => {
  const dispatcher = new Dispatcher({ concurrency: 3 });
  let out = 0;
  let peak = 0;
  await Promise.all(Array.from({ length: 30 }, async (_, i) => {
    const lease = await dispatcher.acquire(`q${i % 2}`);
    out++;
    peak = Math.max(peak, out);
    // Holds the lease while the other acquirers run.
    await settle();
    out--;
    lease.release();
  }));
  assert.equal(peak, 3);
  assert.equal(dispatcher.inFlight, 0);
});

test("Dispatcher rotates fairly: a small queue is not starved by a big one", async () => {
  const dispatcher = new Dispatcher({ concurrency: 1 });
  const blocker = await dispatcher.acquire("setup");
  const order: string[] = [];
  const waiters = [
    ...Array.from({ length: 10 }, () => dispatcher.acquire("big").then((lease) => ({ queue: "big", lease }))),
    ...Array.from({ length: 3 }, () => dispatcher.acquire("small").then((lease) => ({ queue: "small", lease }))),
  ];
  blocker.release();
  for (const waiter of waiters) {
    waiter.then(({ queue, lease }) => {
      order.push(queue);
      // Released a little later, so the next grant is made by the release, in rotation.
      settle().then(() => lease.release());
    });
  }
  await Promise.all(waiters);
  assert.deepEqual(order.slice(0, 6), ["big", "small", "big", "small", "big", "small"]);
});

/** Starts `acquire` and says whether its lease has been granted yet. */
function watchGrant(pending: Promise<Lease>): { granted(): boolean; lease: Promise<Lease> } {
  let granted = false;
  const lease = pending.then((lease) => {
    granted = true;
    return lease;
  });
  return { granted: () => granted, lease };
}

test("Dispatcher holds requests beyond the requests-per-minute budget until it refills", async () => {
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({ concurrency: 100, requestsPerMinute: 600, clock }); // 10 a second
  for (let i = 0; i < 600; i++) (await dispatcher.acquire("q")).release();
  const next = watchGrant(dispatcher.acquire("q"));
  await clock.advance(99);
  assert.equal(next.granted(), false, "the 601st request waits for one request's worth of budget: 100 ms");
  await clock.advance(1);
  assert.equal(next.granted(), true);
  (await next.lease).release();
});

test("Dispatcher spends the token budget by estimate and corrects it by reported usage", async () => {
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({ concurrency: 10, tokensPerMinute: 60_000, clock }); // 1000 a second
  const first = await dispatcher.acquire("q", 50_000);
  first.release(59_900); // the response used more than estimated: only 100 tokens are left
  const second = watchGrant(dispatcher.acquire("q", 1000));
  await clock.advance(899);
  assert.equal(second.granted(), false, "the other 900 tokens take 900 ms to come");
  await clock.advance(1);
  assert.equal(second.granted(), true);
  (await second.lease).release(200); // used less than estimated: the rest comes back
  const third = watchGrant(dispatcher.acquire("q", 800));
  await settle();
  assert.equal(third.granted(), true, "800 refunded tokens are there at once");
  (await third.lease).release();
});

test("Dispatcher: an upstream that answers 429 with Retry-After pauses only its own requests, and its limit falls", async () => {
  const clock = new ManualClock();
  const lanes = (model: string | undefined) => model === "a" ? { id: "a", concurrency: 8 } : { id: "b" };
  const dispatcher = new Dispatcher({ concurrency: 16, clock, lanes });
  const lease = await dispatcher.acquire("q", 0, undefined, "a");
  lease.release(undefined, { kind: "overloaded", latencyMs: 5, retryAfterMs: 200 });
  assert.deepEqual(dispatcher.upstreams().find((lane) => lane.id === "a"), { id: "a", inFlight: 0, limit: 7, maxLimit: 8 });
  const paused = watchGrant(dispatcher.acquire("qa", 0, undefined, "a"));
  const other = watchGrant(dispatcher.acquire("qb", 0, undefined, "b"));
  await settle();
  assert.equal(paused.granted(), false, "no request to the upstream that asked for a pause");
  assert.equal(other.granted(), true, "another upstream's request goes at once");
  await clock.advance(199);
  assert.equal(paused.granted(), false);
  await clock.advance(1);
  assert.equal(paused.granted(), true);
  (await paused.lease).release(undefined, { kind: "success", latencyMs: 5 });
  (await other.lease).release();
  // Successes bring the request back (near where it was refused, four limits' worth of them).
  for (let i = 0; i < 7; i++) (await dispatcher.acquire("q", 0, undefined, "a")).release(undefined, { kind: "success", latencyMs: 5 });
  assert.equal(dispatcher.upstreams().find((lane) => lane.id === "a")!.limit, 7);
  for (let i = 0; i < 30; i++) (await dispatcher.acquire("q", 0, undefined, "a")).release(undefined, { kind: "success", latencyMs: 5 });
  assert.equal(dispatcher.upstreams().find((lane) => lane.id === "a")!.limit, 8);
});

test("Dispatcher: a full upstream holds its requests while another upstream's go", async () => {
  const lanes = (model: string | undefined) => ({ id: model ?? "default", concurrency: model === "slow" ? 1 : undefined });
  const dispatcher = new Dispatcher({ concurrency: 4, lanes });
  const first = await dispatcher.acquire("q1", 0, undefined, "slow");
  const second = watchGrant(dispatcher.acquire("q1", 0, undefined, "slow"));
  const fast = watchGrant(dispatcher.acquire("q2", 0, undefined, "fast"));
  await settle();
  assert.equal(second.granted(), false, "the slow upstream takes one at a time");
  assert.equal(fast.granted(), true, "the other upstream is not held behind it");
  first.release();
  await settle();
  assert.equal(second.granted(), true);
  (await second.lease).release();
  (await fast.lease).release();
  assert.equal(dispatcher.inFlight, 0);
});

test("Dispatcher.acquire() rejects when its signal aborts while waiting", async () => {
  const dispatcher = new Dispatcher({ concurrency: 1 });
  const held = await dispatcher.acquire("a");
  const controller = new AbortController();
  const waiting = dispatcher.acquire("b", 0, controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  held.release();
  assert.equal(dispatcher.inFlight, 0);
});

test("Dispatcher: an aborted signal fails only the waiters that passed it, in every queue", async () => {
  const dispatcher = new Dispatcher({ concurrency: 1 });
  const held = await dispatcher.acquire("setup");
  const stopped = new AbortController();
  const kept = new AbortController();
  const settled = (promise: Promise<Lease>) => promise.then(() => "granted", (error: Error) => error.message);
  const doomed = [
    settled(dispatcher.acquire("a", 0, stopped.signal)),
    settled(dispatcher.acquire("b", 0, stopped.signal)),
    settled(dispatcher.acquire("a", 0, stopped.signal)),
  ];
  const survivors = [dispatcher.acquire("a", 0, kept.signal), dispatcher.acquire("b", 0, kept.signal), dispatcher.acquire("c")];
  stopped.abort(new Error("batch stopped"));
  assert.deepEqual(await Promise.all(doomed), ["batch stopped", "batch stopped", "batch stopped"]);
  held.release();
  for (const survivor of survivors) (await survivor).release();
  assert.equal(dispatcher.inFlight, 0);
  // A signal already watched still works for a later waiter.
  const again = await dispatcher.acquire("setup");
  const late = settled(dispatcher.acquire("a", 0, kept.signal));
  kept.abort(new Error("later"));
  assert.equal(await late, "later");
  again.release();
});

test("retryAfterMs() reads seconds, HTTP dates and retry-after-ms", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterMs(new Headers({ "retry-after": "3" }), now), 3000);
  assert.equal(retryAfterMs(new Headers({ "retry-after": "Thu, 01 Jan 2026 00:00:05 GMT" }), now), 5000);
  assert.equal(retryAfterMs(new Headers({ "retry-after-ms": "250" }), now), 250);
  assert.equal(retryAfterMs(new Headers({ "retry-after": "soon" }), now), null);
  assert.equal(retryAfterMs(new Headers(), now), null);
});

test("backoffDelay() grows exponentially with jitter and is capped", () => {
  const policy = { baseMs: 100, maxMs: 1000 };
  assert.equal(backoffDelay(0, policy, () => 0), 50);
  assert.equal(backoffDelay(0, policy, () => 1), 100);
  assert.equal(backoffDelay(3, policy, () => 1), 800);
  assert.equal(backoffDelay(10, policy, () => 1), 1000);
});

test("responseRecord() splices a one-line body as received and serialises a multi-line one", async () => {
  const { responseRecord } = await import("../../src/engine/lines/result_records.ts");
  const response = { status_code: 200, request_id: "r", body: { a: [1, 2], s: "x\ny" } };
  const spliced = responseRecord(7, "c\"7", response, ' {"a":[1, 2],"s":"x\\ny"} ');
  const parsed = JSON.parse(spliced);
  assert.match(spliced, /^\{"id":"batch_req_[0-9a-f]+_7","custom_id":"c\\"7","response":\{"status_code":200,"request_id":"r","body":\{"a":\[1, 2\]/);
  assert.deepEqual(parsed.response.body, response.body);
  assert.equal(parsed.error, null);
  // A body that ends with a newline (Go's json.Encoder writes one) is still spliced: `1.0` stays `1.0`.
  const trailing = responseRecord(9, "c9", { ...response, body: { n: 1 } }, '{"n":1.0}\r\n');
  assert.match(trailing, /"body":\{"n":1\.0\}\},"error":null\}$/);
  const multiLine = responseRecord(8, "c8", response, '{\n  "a": [1, 2],\n  "s": "x\\ny"\n}');
  assert.ok(!multiLine.includes("\n"));
  assert.deepEqual(JSON.parse(multiLine).response.body, response.body);
});

/** Queues `count` acquires on `spec` behind a blocker, then grants one at a time and returns the grant order's queue ids. */
async function grantOrder(
  dispatcher: Dispatcher,
  waiting: { spec: QueueSpec; count: number }[],
  grants: number,
): Promise<string[]> {
  const blocker = await dispatcher.acquire({ id: "blocker", owner: "x", priority: 1_000, maxInFlight: null });
  const order: string[] = [];
  const leases: Promise<void>[] = [];
  for (const { spec, count } of waiting) {
    for (let i = 0; i < count; i++) {
      leases.push(dispatcher.acquire(spec).then((lease) => {
        order.push(spec.id);
        // Released only after the next one is granted would be a deadlock at concurrency 1: release at once.
        lease.release();
      }));
    }
  }
  blocker.release();
  await Promise.all(leases);
  return order.slice(0, grants);
}

const queue = (id: string, owner: string, priority = 0, maxInFlight: number | null = null): QueueSpec => ({ id, owner, priority, maxInFlight });

test("Dispatcher grants a higher priority's requests first, whatever waited longer", async () => {
  const dispatcher = new Dispatcher({ concurrency: 1 });
  const order = await grantOrder(dispatcher, [
    { spec: queue("low", "a", 0), count: 5 },
    { spec: queue("high", "b", 10), count: 5 },
    { spec: queue("negative", "c", -1), count: 2 },
  ], 12);
  assert.deepEqual(order, [...Array(5).fill("high"), ...Array(5).fill("low"), "negative", "negative"]);
});

test("Dispatcher shares a priority between owners by weight, whatever number of batches each has", async () => {
  const weights = new Map([["heavy", 3], ["light", 1]]);
  const dispatcher = new Dispatcher({ concurrency: 1, weightOf: (owner) => weights.get(owner) ?? 1 });
  const order = await grantOrder(dispatcher, [
    // The light owner has four batches: it still gets a quarter, not four fifths.
    ...["l1", "l2", "l3", "l4"].map((id) => ({ spec: queue(id, "light"), count: 50 })),
    { spec: queue("h1", "heavy"), count: 200 },
  ], 200);
  const heavy = order.filter((id) => id === "h1").length;
  assert.equal(heavy, 150);
  // Within the light owner, its batches take turns.
  const light = order.filter((id) => id !== "h1").slice(0, 8);
  assert.deepEqual(light, ["l1", "l2", "l3", "l4", "l1", "l2", "l3", "l4"]);
});

test("Dispatcher: an owner that had nothing waiting gets no credit for the time it was idle", async () => {
  const dispatcher = new Dispatcher({ concurrency: 1 });
  // Owner a alone for a while, always with requests waiting.
  await grantOrder(dispatcher, [{ spec: queue("a1", "a"), count: 100 }], 100);
  const order = await grantOrder(dispatcher, [
    { spec: queue("a1", "a"), count: 10 },
    { spec: queue("b1", "b"), count: 10 },
  ], 10);
  // b, new, does not get 100 grants in a row to catch up: the two alternate from the start.
  assert.deepEqual(order, ["b1", "a1", "b1", "a1", "b1", "a1", "b1", "a1", "b1", "a1"]);
});

test("Dispatcher never has more of a queue's requests in flight than its own limit, and lends the rest to others", async () => {
  const dispatcher = new Dispatcher({ concurrency: 8 });
  const capped = queue("capped", "a", 5, 3);
  let out = 0;
  let peak = 0;
  const others: Lease[] = [];
  const cappedRuns = Array.from({ length: 40 }, async () => {
    const lease = await dispatcher.acquire(capped);
    out++;
    peak = Math.max(peak, out);
    await settle();
    out--;
    lease.release();
  });
  // A lower priority queue gets the slots the capped one cannot use.
  for (let i = 0; i < 5; i++) others.push(await dispatcher.acquire(queue("other", "b", 0)));
  await Promise.all(cappedRuns);
  assert.equal(peak, 3);
  assert.equal(others.length, 5);
  for (const lease of others) lease.release();
  assert.equal(dispatcher.inFlight, 0);
});

test("Dispatcher: a model out of its own budget waits while other models go on; its budget refills", async () => {
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({ concurrency: 100, clock, modelBudgets: [{ pattern: "gpt-*", requestsPerMinute: 60 }] }); // 1 a second each
  // Each model matching the pattern has a budget of its own.
  for (let i = 0; i < 60; i++) (await dispatcher.acquire("q", 0, undefined, "gpt-a")).release();
  for (let i = 0; i < 60; i++) (await dispatcher.acquire("q", 0, undefined, "gpt-b")).release();
  const held = watchGrant(dispatcher.acquire("held", 0, undefined, "gpt-a"));
  // Another queue behind it, of a model without a budget, is not held up.
  const other = watchGrant(dispatcher.acquire("other", 0, undefined, "llama"));
  await settle();
  assert.equal(held.granted(), false);
  assert.equal(other.granted(), true);
  await clock.advance(999);
  assert.equal(held.granted(), false);
  await clock.advance(1);
  assert.equal(held.granted(), true);
});

test("Dispatcher: a model's token budget is corrected by reported usage, and shared among nodes", async () => {
  const clock = new ManualClock();
  const dispatcher = new Dispatcher({ concurrency: 100, clock, modelBudgets: [{ pattern: "m", tokensPerMinute: 6_000 }] });
  const lease = await dispatcher.acquire("q", 1_000, undefined, "m");
  lease.release(6_000); // it used all of the minute's tokens
  const next = watchGrant(dispatcher.acquire("q", 100, undefined, "m"));
  await settle();
  assert.equal(next.granted(), false);
  await clock.advance(1_000); // 100 tokens back
  assert.equal(next.granted(), true);
  (await next.lease).release(100);
  // Half the budget for this node: 50 tokens a second.
  dispatcher.shareBudgets(0.5);
  const shared = watchGrant(dispatcher.acquire("q", 100, undefined, "m"));
  await clock.advance(1_000);
  assert.equal(shared.granted(), false);
  await clock.advance(1_000);
  assert.equal(shared.granted(), true);
});
