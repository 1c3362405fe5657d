/**
 * The webhook deliverer's reading of the outbox, on a clock the test moves:
 * an entry is read when it is due, not at every sweep.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WEBHOOK_OUTBOX_PREFIX } from "../../src/batch/model/storage_keys.ts";
import type { OutboxEntry } from "../../src/batch/model/webhook_event.ts";
import { createBatchEngine } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { createWebhookDeliverer } from "../../src/webhooks/deliverer.ts";
import { ManualClock } from "../support/clock.ts";
import { startReceiver } from "../support/webhook_receiver.ts";
import { ended, line, submit, waitUntil } from "../support/engine.ts";

const HOUR = 3_600_000;

test("webhook outbox: an entry waiting for its next attempt is not read again until then, however often the outbox is swept", async () => {
  const base = createMemoryStorage();
  const reads = new Map<string, number>();
  const storage: Storage = {
    ...base,
    documents: {
      ...base.documents,
      get(key) {
        reads.set(key, (reads.get(key) ?? 0) + 1);
        return base.documents.get(key);
      },
    },
  };
  // The first attempt fails, the next succeeds.
  const receiver = await startReceiver((attempt) => (attempt === 1 ? 500 : 200));
  const { url } = receiver;
  const answers = () => receiver.deliveries.map((delivery) => delivery.answered);
  const engine = createBatchEngine({ storage: base, target: createMockTarget(), logger: silentLogger, checkpoints: false, webhooks: { wants: () => true } });
  await engine.start();
  const clock = new ManualClock(Date.now() + 1_000);
  const deliverer = createWebhookDeliverer({
    storage,
    endpointFor: () => ({ url, secret: `whsec_${btoa("a".repeat(32))}` }),
    logger: silentLogger,
    clock,
    firstRetryMs: HOUR,
    pollMs: 1_000,
  });
  try {
    assert.equal((await waitUntil(engine, (await submit(engine, [line("a", "m")])).id, ended)).status, "completed");
    const [key] = (await base.documents.list(WEBHOOK_OUTBOX_PREFIX)).keys;
    deliverer.start();
    // The first attempt fails: the next is an hour away.
    while ((await base.documents.get<OutboxEntry>(key))?.value.attempts !== 1) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(reads.get(key), 1);
    let sweeps = 0;
    for (; sweeps < 30; sweeps++) await clock.advance(1_000);
    assert.equal(reads.get(key), 1, `read once in ${sweeps} sweeps, not at each`);
    await clock.advance(HOUR);
    while ((await base.documents.list(WEBHOOK_OUTBOX_PREFIX)).keys.length) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(answers(), [500, 200]);
    assert.equal(reads.get(key), 2, "read again when it was due, and delivered");
  } finally {
    await deliverer.close();
    await engine.close();
    await receiver.close();
    await base.close();
  }
});
