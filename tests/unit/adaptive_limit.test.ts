import assert from "node:assert/strict";
import { test } from "node:test";
import { AdaptiveLimit } from "../../src/engine/lines/adaptive_limit.ts";

test("AdaptiveLimit: an overload takes a tenth off; each further refusal of a request already in flight one more", () => {
  const limit = new AdaptiveLimit(20);
  const inFlight = Array.from({ length: 20 }, () => limit.sent());
  limit.answered(inFlight[0], "overloaded", 10);
  assert.equal(limit.value, 18);
  // Four more of those in flight refused: the server takes fewer than 18.
  for (const ticket of inFlight.slice(1, 5)) limit.answered(ticket, "overloaded", 10);
  assert.equal(limit.value, 14);
  // A request sent after the decrease that is refused starts a new round: a tenth off again.
  limit.answered(limit.sent(), "overloaded", 10);
  assert.equal(limit.value, 12);
});

test("AdaptiveLimit: near the limit where it was refused, it grows four times slower", () => {
  const limit = new AdaptiveLimit(64);
  limit.answered(limit.sent(), "overloaded", 10); // refused at 64: its edge
  assert.equal(limit.value, 57);
  for (let i = 0; i < 6 * 60; i++) limit.answered(limit.sent(), "success", 10);
  assert.equal(limit.value, 63, "about one more per limit's worth of successes, up to the edge");
  for (let i = 0; i < 63; i++) limit.answered(limit.sent(), "success", 10);
  assert.equal(limit.value, 63, "a limit's worth is a quarter request near the edge");
  for (let i = 0; i < 4 * 64; i++) limit.answered(limit.sent(), "success", 10);
  assert.equal(limit.value, 64);
});

test("AdaptiveLimit: successes add one request per limit's worth, up to the most", () => {
  const limit = new AdaptiveLimit(40);
  limit.answered(limit.sent(), "overloaded", 10);
  assert.equal(limit.value, 36);
  for (let i = 0; i < 30; i++) limit.answered(limit.sent(), "success", 10);
  assert.equal(limit.value, 36, "not yet a limit's worth");
  for (let i = 0; i < 10; i++) limit.answered(limit.sent(), "success", 10);
  assert.equal(limit.value, 37);
  for (let i = 0; i < 10_000; i++) limit.answered(limit.sent(), "success", 10);
  assert.equal(limit.value, 40, "never above its most");
  // Other failures (a 400, a refused connection) say nothing about load.
  limit.answered(limit.sent(), "other", 10);
  assert.equal(limit.value, 40);
});

test("AdaptiveLimit: latency that rises past twice its long-run level counts as an overload; a fast upstream's jitter does not", () => {
  const limit = new AdaptiveLimit(10);
  for (let i = 0; i < 50; i++) limit.answered(limit.sent(), "success", 100);
  assert.equal(limit.value, 10);
  for (let i = 0; i < 5; i++) limit.answered(limit.sent(), "success", 1_000);
  assert.ok(limit.value < 10, `the limit fell to ${limit.value}`);

  const fast = new AdaptiveLimit(10);
  for (let i = 0; i < 50; i++) fast.answered(fast.sent(), "success", 1);
  for (let i = 0; i < 5; i++) fast.answered(fast.sent(), "success", 30);
  assert.equal(fast.value, 10, "30 ms is no queue");

  const fixed = new AdaptiveLimit(10, { adaptive: false });
  fixed.answered(fixed.sent(), "overloaded", 10);
  assert.equal(fixed.value, 10, "a fixed limit stays");
});

test("AdaptiveLimit never goes below one request", () => {
  const limit = new AdaptiveLimit(3);
  for (let i = 0; i < 50; i++) limit.answered(limit.sent(), "overloaded", 10);
  assert.equal(limit.value, 1);
});
