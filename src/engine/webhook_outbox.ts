/**
 * Records a batch's end event in the webhook outbox, before the status that
 * causes it is written: a crash between the two leaves an event whose batch
 * does not yet say so (the deliverer waits for it), never a status without
 * its event. The event's id is fixed by batch and type, so ending the batch
 * again after a restart records the same event.
 *
 * @module
 */
import type { Clock } from "../shared/clock.ts";
import type { Storage } from "../storage/types.ts";
import { EVENT_TYPES, eventIdOf, type OutboxEntry } from "../batch/model/webhook_event.ts";
import type { BatchRecord } from "../batch/model/objects.ts";
import { webhookOutboxKey } from "../batch/model/storage_keys.ts";
import type { WebhookOutboxOptions } from "./types.ts";

/** Writes the outbox entry of the batch's (final) status, when its owner has an endpoint. */
export async function recordEndEvent(
  context: { webhooks: WebhookOutboxOptions | undefined; clock: Clock; storage: Storage },
  record: BatchRecord,
): Promise<void> {
  const webhooks = context.webhooks;
  const { owner, batch: b } = record;
  const type = EVENT_TYPES[b.status];
  if (!webhooks || !type || !webhooks.wants(owner)) return;
  const id = eventIdOf(b.id, type);
  const entry: OutboxEntry = {
    event: { id, object: "event", type, created_at: Math.floor(context.clock.now() / 1000), data: { id: b.id } },
    owner,
    status: b.status,
    attempts: 0,
    next_attempt_at: context.clock.now(),
  };
  await context.storage.documents.put(webhookOutboxKey(id), entry);
  webhooks.recorded?.(entry);
}
