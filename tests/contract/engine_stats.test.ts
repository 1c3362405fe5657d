/**
 * The engine's gauges as a scrape reads them: from the work ledger at the
 * scrape, not as of the node's last poll, so a batch that has just ended is
 * no longer counted.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createBatchEngine } from "../../src/engine/engine.ts";
import { createPrometheusMetrics } from "../../src/http/operator/metrics.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import { ManualClock } from "../support/clock.ts";
import { driveUntil, ended, line, submit } from "../support/engine.ts";
import { RecordingTarget } from "../support/recording_target.ts";

test("engine stats: a scrape right after a batch ended reads no line waiting and no batch running, whatever the last poll saw", async () => {
  const clock = new ManualClock();
  const target = new RecordingTarget();
  target.gated.add("g");
  const metrics = createPrometheusMetrics();
  const storage = createMemoryStorage();
  const engine = createBatchEngine({
    storage,
    target: target.targetOf(0),
    clock,
    logger: silentLogger,
    checkpoints: false,
    observer: metrics.observer,
    pollMs: 60_000,
    concurrency: 1,
  });
  metrics.attach(engine);
  await engine.start();
  try {
    const batch = await submit(engine, Array.from({ length: 4 }, (_, i) => line(`g-${i}`, "ok")));
    while (target.heldCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    // A poll while the lines wait: the node's figures say so.
    await clock.advance(60_000);
    assert.ok(engine.stats().linesWaiting > 0, "the last poll saw lines waiting");
    target.gated.clear();
    target.releaseHeld();
    await driveUntil(engine, clock, batch.id, ended, { stepMs: 1, maxMs: 30_000 });
    assert.ok(engine.stats().linesWaiting > 0, "no poll since: the node's own figures are stale");
    const scraped = await metrics.registry.getSingleMetricAsString("batchspool_lines_waiting");
    assert.match(scraped, /^batchspool_lines_waiting 0$/m);
    const running = await metrics.registry.getSingleMetricAsString("batchspool_batches");
    assert.match(running, /^batchspool_batches\{status="in_progress"\} 0$/m);
    assert.deepEqual((await engine.freshStats()).linesWaiting, 0);
  } finally {
    await engine.close();
    await storage.close();
  }
});
