/**
 * On PostgreSQL the nodes of a cluster stamp and compare times by the
 * database's clock: a node whose wall clock is wrong (here, this process's
 * `Date.now` moved a day ahead) stamps, expires and times webhook attempts as
 * the others do.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { WEBHOOK_OUTBOX_PREFIX } from "../../src/batch/model/storage_keys.ts";
import { createBatchEngine } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { createWebhookDeliverer } from "../../src/webhooks/deliverer.ts";
import { startReceiver } from "../support/webhook_receiver.ts";
import { ended, line, OWNER, submit, waitUntil } from "../support/engine.ts";
import { databaseUrl, openTestPostgresStorage } from "../support/postgres.ts";

const DAY = 86_400_000;

/** Runs `body` while this process's wall clock (`Date.now`) runs `skewMs` ahead. */
async function withWallClockAhead<T>(skewMs: number, body: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  Date.now = () => realNow() + skewMs;
  try {
    return await body();
  } finally {
    Date.now = realNow;
  }
}

/** The database's time, in seconds. */
async function databaseSeconds(): Promise<number> {
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  try {
    const [{ seconds }] = await sql`select extract(epoch from clock_timestamp())::float8 as seconds`;
    return seconds;
  } finally {
    await sql.end();
  }
}

test("database clock: a node whose wall clock runs two days fast stamps its batches and files by the database's time, and expires nothing early", () =>
  withWallClockAhead(2 * DAY, async () => {
    const storage = await openTestPostgresStorage();
    const engine = createBatchEngine({ storage, target: createMockTarget(), logger: silentLogger, checkpoints: false });
    await engine.start();
    try {
      const batch = await submit(engine, [line("a", "m"), line("b", "m")]);
      const database = await databaseSeconds();
      assert.ok(Math.abs(batch.created_at - database) < 60, `created_at ${batch.created_at}, the database's time ${database}`);
      const { file } = await engine.files.get(OWNER, batch.input_file_id);
      assert.ok(Math.abs(file.created_at - database) < 60, `the file's created_at ${file.created_at}`);
      assert.equal(batch.expires_at! - batch.created_at, 86_400, "and its window ends a day after that");
      // By the node's own clock its 24 h window ended a day ago.
      const done = await waitUntil(engine, batch.id, ended);
      assert.equal(done.status, "completed", "not expired");
    } finally {
      await engine.close();
      await storage.close();
    }
  }));

test("database clock: a webhook deliverer on a node whose wall clock runs a day fast retries a failed attempt instead of giving up", async () => {
  const storage = await openTestPostgresStorage();
  // The first attempt fails, the next succeeds.
  const receiver = await startReceiver((attempt) => (attempt === 1 ? 500 : 200));
  const { url } = receiver;
  const answers = () => receiver.deliveries.map((delivery) => delivery.answered);
  try {
    // A node with a right clock records the event of a batch's end.
    const engine = createBatchEngine({
      storage,
      target: createMockTarget(),
      logger: silentLogger,
      checkpoints: false,
      webhooks: { wants: () => true },
    });
    await engine.start();
    try {
      assert.equal((await waitUntil(engine, (await submit(engine, [line("a", "m")])).id, ended)).status, "completed");
    } finally {
      await engine.close();
    }
    assert.equal((await storage.documents.list(WEBHOOK_OUTBOX_PREFIX)).keys.length, 1);
    // A node a day fast delivers it: by its own clock the event would be past the 24 h it is tried for.
    await withWallClockAhead(DAY, async () => {
      const deliverer = createWebhookDeliverer({
        storage,
        endpointFor: () => ({ url, secret: `whsec_${btoa("a".repeat(32))}` }),
        logger: silentLogger,
        firstRetryMs: 10,
        pollMs: 10,
      });
      deliverer.start();
      try {
        while ((await storage.documents.list(WEBHOOK_OUTBOX_PREFIX)).keys.length) await new Promise((resolve) => setTimeout(resolve, 10));
      } finally {
        await deliverer.close();
      }
    });
    assert.deepEqual(answers(), [500, 200], "tried again after the failure, and delivered");
  } finally {
    await receiver.close();
    await storage.close();
  }
});
