/**
 * Scheduling on every setup (memory, a data directory, one PostgreSQL node,
 * three): priority, fair shares between keys, a batch's own limit on
 * requests in flight, pause and resume. What each node sends is recorded at
 * the target of that node; requests of "gated" batches wait until the test
 * lets them go, so the order is decided by the engine, not by timing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { BatchEngine } from "../../src/engine/engine.ts";
import type { BatchObject } from "../../src/batch/model/objects.ts";
import { allCustomIds, ended, line, OWNER, uploadInput, waitUntil } from "../support/engine.ts";
import { RecordingTarget } from "../support/recording_target.ts";
import { SETUPS } from "../support/setups.ts";

/** The lines of a result file, as written. */
async function recordsOf(api: BatchEngine, fileId: string | null): Promise<string[]> {
  if (!fileId) return [];
  const { stream } = await api.files.content(OWNER, fileId);
  return (await new Response(stream).text()).split("\n").filter(Boolean);
}

const linesOf = (group: string, count: number) => Array.from({ length: count }, (_, i) => line(`${group}-${i}`, "ok"));

async function create(api: BatchEngine, lines: string[], extra: Record<string, unknown> = {}, owner = OWNER): Promise<BatchObject> {
  return await api.createBatch(owner, {
    input_file_id: await uploadInput(api, lines, owner),
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
    ...extra,
  });
}

/** Waits for `condition` (polled), failing after a minute. */
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Whether any node holds a slice of `batchId`. */
async function sliceHeld(api: BatchEngine, batchId: string): Promise<boolean> {
  const cluster = await api.describeCluster();
  return cluster.nodes.some((node) => node.work.some((work) => work.batch_id === batchId && work.kind === "slice"));
}

/** Lets the gated requests go, round by round, until `done` says so. */
async function releaseUntil(target: RecordingTarget, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out releasing requests (${target.sent.length} sent, ${target.heldCount} held)`);
    const seen = target.sent.length;
    target.releaseHeld();
    await target.arrivalBeyond(seen, 50);
  }
}

for (const setup of SETUPS) {
  const small = { sliceLimits: { maxLines: 4 } };

  test(`${setup.name}: scheduling: a higher priority's lines go before a lower one's on the node that runs both`, async () => {
    const upstream = new RecordingTarget();
    await setup.with({ target: upstream.targetOf(0), targetOf: upstream.targetOf, concurrency: 1, ...small }, async (nodes) => {
      upstream.gated.add("low");
      const low = await create(nodes.api, linesOf("low", 120));
      await until(() => upstream.heldCount >= 1, "the low batch runs");
      // The high one set by metadata, as the unchanged SDKs can.
      const high = await create(nodes.api, linesOf("high", 4), { metadata: { priority: "10" } });
      assert.equal(high.priority, 10);
      await until(() => sliceHeld(nodes.api, high.id), "the high batch's slice is claimed");
      await releaseUntil(upstream, async () => ended(await nodes.api.getBatch(OWNER, high.id)));
      upstream.gated.delete("low");
      upstream.releaseHeld();
      await waitUntil(nodes.api, low.id, ended);

      const highNodes = new Set(upstream.sent.filter((sent) => sent.group === "high").map((sent) => sent.node));
      assert.equal(highNodes.size, 1, "one slice, one node");
      const order = upstream.sentBy([...highNodes][0]).map((sent) => sent.group);
      const first = order.indexOf("high");
      assert.ok(order.slice(0, first).includes("low"), "the node was running the low batch first");
      assert.deepEqual(order.slice(first, first + 4), ["high", "high", "high", "high"], order.join(" "));
      assert.ok(order.slice(first + 4).includes("low"), "the low batch still had lines waiting there");
      assert.equal((await nodes.api.getBatch(OWNER, low.id)).request_counts.completed, 120);
    });
  });

  test(`${setup.name}: scheduling: a key with a small batch makes progress beside another key's huge one from the start`, async () => {
    const upstream = new RecordingTarget();
    await setup.with({ target: upstream.targetOf(0), targetOf: upstream.targetOf, concurrency: 2, ...small }, async (nodes) => {
      upstream.gated.add("a").add("b");
      const huge = await create(nodes.api, linesOf("a", 200), {}, "key-a");
      await until(() => upstream.heldCount >= 2, "the huge batch runs");
      const smallBatch = await create(nodes.api, linesOf("b", 16), {}, "key-b");
      await releaseUntil(upstream, async () => ended(await nodes.api.getBatch("key-b", smallBatch.id)));
      // Taking turns from the start, the small one ends early; first in, first out, only once the huge one's last slices were claimed.
      const hugeDone = upstream.sent.filter((sent) => sent.group === "a").length;
      assert.ok(hugeDone <= 150, `the small batch ended after ${hugeDone} of the huge one's 200 lines were sent`);
      upstream.gated.clear();
      upstream.releaseHeld();
      await until(async () => ended(await nodes.api.getBatch("key-a", huge.id)), "the huge batch ends");
    });
  });

  test(`${setup.name}: scheduling: a batch's max_concurrency is never exceeded at the upstream, and others use the rest`, async () => {
    const upstream = new RecordingTarget(3);
    await setup.with({ target: upstream.targetOf(0), targetOf: upstream.targetOf, concurrency: 8, ...small }, async (nodes) => {
      const capped = await create(nodes.api, linesOf("capped", 60), { metadata: { max_concurrency: "3" } });
      const free = await create(nodes.api, linesOf("free", 60));
      assert.equal(capped.max_concurrency, 3);
      assert.equal(free.max_concurrency, null);
      for (const batch of [capped, free]) {
        const finished = await waitUntil(nodes.api, batch.id, ended);
        assert.equal(finished.request_counts.completed, 60);
      }
      assert.equal(upstream.peak.get("capped"), 3, "the limit is reached, never passed");
      assert.ok(upstream.peak.get("free")! > 3, `the other batch had up to ${upstream.peak.get("free")} in flight`);
    });
  });

  test(`${setup.name}: scheduling: results so far can be read while a batch runs, each once, and add up to its files`, async () => {
    const upstream = new RecordingTarget();
    await setup.with({ target: upstream.targetOf(0), targetOf: upstream.targetOf, concurrency: 2, ...small }, async (nodes) => {
      upstream.gated.add("r").add("bad");
      const lines = [...linesOf("r", 30), ...linesOf("bad", 6)];
      const batch = await create(nodes.api, lines);
      const read = async (after?: string) => {
        const found = await nodes.api.resultsSoFar(OWNER, batch.id, after);
        const text = await new Response(found.records).text();
        return { lines: text.split("\n").filter(Boolean), next: found.next, complete: found.complete };
      };
      const first = await read();
      assert.equal(first.complete, false);
      const seen: string[] = [...first.lines];
      let cursor = first.next;
      let reads = 0;
      let partial = 0;
      for (;;) {
        upstream.releaseHeld();
        await upstream.arrivalBeyond(upstream.sent.length, 20);
        const next = await read(cursor);
        // The same position gives those records again (and any recorded since).
        const again = new Set((await read(cursor)).lines);
        assert.ok(next.lines.every((line) => again.has(line)));
        seen.push(...next.lines);
        cursor = next.next;
        reads++;
        if (next.lines.length && !next.complete) partial++;
        if (next.complete) break;
        if (reads > 2_000) throw new Error("the batch does not end");
      }
      assert.ok(partial >= 1, "some results were read before the end");
      const done = await nodes.api.getBatch(OWNER, batch.id);
      assert.equal(done.status, "completed");
      const ids = seen.map((text) => JSON.parse(text).custom_id as string);
      assert.equal(new Set(ids).size, ids.length, "each result once");
      const files = [...await recordsOf(nodes.api, done.output_file_id), ...await recordsOf(nodes.api, done.error_file_id)];
      assert.deepEqual([...seen].sort(), files.sort(), "the results read are the files' lines");
      assert.equal((await read(cursor)).lines.length, 0, "nothing after the end");
      await assert.rejects(nodes.api.resultsSoFar(OWNER, batch.id, "nonsense"), { code: "invalid_request", param: "after" });
    });
  });

  test(`${setup.name}: scheduling: a paused batch can be cancelled (it ends at once, its results kept) and expires when its window ends`, async () => {
    const upstream = new RecordingTarget();
    await setup.with({ target: upstream.targetOf(0), targetOf: upstream.targetOf, concurrency: 2, ...small }, async (nodes) => {
      upstream.gated.add("c").add("x");
      // Paused as soon as it is created (its window is short): it expires while paused.
      const expiring = await create(nodes.api, linesOf("x", 20), { completion_window: "3s" });
      await nodes.api.pauseBatch(OWNER, expiring.id);
      const cancelled = await create(nodes.api, linesOf("c", 20));
      await until(() => upstream.heldCount >= 1, "it runs");
      await nodes.api.pauseBatch(OWNER, cancelled.id);
      await releaseUntil(upstream, async () =>
        !(await sliceHeld(nodes.api, cancelled.id)) && !(await sliceHeld(nodes.api, expiring.id)) && upstream.heldCount === 0);
      const sent = upstream.sent.length;
      await nodes.api.cancelBatch(OWNER, cancelled.id);
      const ended1 = await waitUntil(nodes.api, cancelled.id, ended);
      assert.equal(ended1.status, "cancelled");
      assert.equal(ended1.request_counts.completed, upstream.sent.filter((line) => line.group === "c").length, "its results kept");
      const ended2 = await waitUntil(nodes.api, expiring.id, ended);
      assert.equal(ended2.status, "expired");
      assert.equal(ended2.request_counts.completed, upstream.sent.filter((line) => line.group === "x").length);
      assert.equal(upstream.sent.length, sent, "nothing more was sent");
    });
  });

  test(`${setup.name}: scheduling: a paused batch sends nothing, keeps its results, stays paused after a restart, and resumes to the end`, async () => {
    const upstream = new RecordingTarget();
    await setup.with({ target: upstream.targetOf(0), targetOf: upstream.targetOf, concurrency: 2, ...small }, async (first) => {
      upstream.gated.add("p");
      const paused = await create(first.api, linesOf("p", 40));
      await until(() => upstream.heldCount >= 2, "the batch runs");
      const answer = await first.api.pauseBatch(OWNER, paused.id);
      assert.equal(typeof answer.paused_at, "number");
      assert.equal(answer.status, "in_progress");
      // Requests in flight finish; then no node holds its slices.
      await releaseUntil(upstream, async () => !(await sliceHeld(first.api, paused.id)) && upstream.heldCount === 0);
      const sentBefore = upstream.sent.filter((sent) => sent.group === "p").length;
      assert.ok(sentBefore < 40);
      // Another batch runs to its end meanwhile: the paused one sends nothing.
      const other = await create(first.api, linesOf("q", 12));
      await waitUntil(first.api, other.id, ended);
      assert.equal(upstream.sent.filter((sent) => sent.group === "p").length, sentBefore);
      const kept = await first.api.getBatch(OWNER, paused.id);
      assert.equal(kept.request_counts.completed, sentBefore, "every answer of a request in flight is kept");
      assert.equal((await first.api.pauseBatch(OWNER, paused.id)).paused_at, answer.paused_at, "pausing again changes nothing");

      const nodes = await first.restart();
      const still = await nodes.api.getBatch(OWNER, paused.id);
      assert.equal(still.paused_at, answer.paused_at);
      const third = await create(nodes.api, linesOf("r", 12));
      await waitUntil(nodes.api, third.id, ended);
      assert.equal(upstream.sent.filter((sent) => sent.group === "p").length, sentBefore, "still paused after the restart");

      upstream.gated.clear();
      const resumed = await nodes.api.resumeBatch(OWNER, paused.id);
      assert.equal(resumed.paused_at, null);
      const finished = await waitUntil(nodes.api, paused.id, ended);
      assert.equal(finished.status, "completed");
      assert.equal(finished.request_counts.completed, 40);
      assert.deepEqual(await allCustomIds(nodes.api, finished), linesOf("p", 40).map((l) => JSON.parse(l).custom_id).sort());
      assert.equal(upstream.sent.filter((sent) => sent.group === "p").length, 40, "no line sent twice");
      await assert.rejects(nodes.api.pauseBatch(OWNER, paused.id), { code: "conflict" });
    });
  });
}
