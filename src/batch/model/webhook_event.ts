/**
 * The webhook events of batches, as OpenAI sends them, and the outbox entry
 * that keeps one until its endpoint has it.
 *
 * @module
 */
import { sha256Hex } from "../../integrity/sha256.ts";
import type { BatchStatus } from "./objects.ts";

/** The statuses that send an event, and the event's type. */
export const EVENT_TYPES: Partial<Record<BatchStatus, string>> = {
  completed: "batch.completed",
  failed: "batch.failed",
  expired: "batch.expired",
  cancelled: "batch.cancelled",
};

/** An event's body, as OpenAI's: `{"id": "evt_…", "object": "event", "type": "batch.completed", …}`. */
export interface WebhookEvent {
  id: string;
  object: "event";
  type: string;
  created_at: number;
  data: { id: string };
}

/** An event waiting in the outbox. */
export interface OutboxEntry {
  event: WebhookEvent;
  /** Whose endpoint receives it. */
  owner: string;
  /** The status that sent it: the entry is delivered once the batch's record says so. */
  status: BatchStatus;
  /** Deliveries tried so far. */
  attempts: number;
  /** When to try next (ms since the epoch). */
  next_attempt_at: number;
  /**
   * Until when (ms since the epoch) the attempt in progress belongs to the
   * deliverer that claimed it: with several nodes, one node makes each attempt.
   */
  claimed_until?: number;
}

/**
 * The id of a batch's event of one type: the same whenever the status is
 * reached again (a restart finalizing anew), so recording it twice is one event.
 */
export function eventIdOf(batchId: string, type: string): string {
  return `evt_${sha256Hex(`${batchId}:${type}`).slice(0, 32)}`;
}
