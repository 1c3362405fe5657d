/**
 * Anthropic's Message Batch object, as batchspool shows one of its batches
 * made through the Message Batches API: the same batch, under an id of
 * Anthropic's shape (`msgbatch_` and the batch's own suffix, so either id
 * finds it), its status and counts in Anthropic's terms, times as RFC 3339.
 *
 * @module
 */
import type { BatchObject, MessageBatchState } from "../model/objects.ts";

/** Anthropic's Message Batch object. */
export interface MessageBatch {
  id: string;
  type: "message_batch";
  processing_status: "in_progress" | "canceling" | "ended";
  request_counts: { processing: number; succeeded: number; errored: number; canceled: number; expired: number };
  created_at: string;
  expires_at: string;
  ended_at: string | null;
  archived_at: string | null;
  cancel_initiated_at: string | null;
  /** Where its results are, once it has ended. */
  results_url: string | null;
}

const PREFIX = "msgbatch_";

/** The message batch id of a batch. */
export const messageBatchIdOf = (batchId: string): string => PREFIX + batchId.slice("batch_".length);

/** The batch id of a message batch id (null: not one). */
export function batchIdOfMessageBatch(id: string): string | null {
  return id.startsWith(PREFIX) ? `batch_${id.slice(PREFIX.length)}` : null;
}

const time = (seconds: number | null): string | null => (seconds === null ? null : new Date(seconds * 1000).toISOString());

/**
 * A batch as a Message Batch; `resultsUrl` is where its results are served
 * (given once it has ended).
 */
export function toMessageBatch(batch: BatchObject, state: MessageBatchState, resultsUrl: string): MessageBatch {
  const endedAt = batch.completed_at ?? batch.failed_at ?? batch.expired_at ?? batch.cancelled_at;
  const ended = endedAt !== null;
  const { completed, failed } = batch.request_counts;
  // Requests a cancel or an expiry left undone are recorded as failed lines; the rest of the failed are errors.
  const undone = ended && state.results_before_end !== null ? Math.max(0, state.requests - state.results_before_end) : 0;
  const counts = {
    processing: ended ? 0 : Math.max(0, state.requests - completed - failed),
    succeeded: completed,
    errored: Math.max(0, failed - undone),
    canceled: batch.status === "cancelled" ? undone : 0,
    expired: batch.status === "expired" ? undone : 0,
  };
  return {
    id: messageBatchIdOf(batch.id),
    type: "message_batch",
    processing_status: ended ? "ended" : batch.status === "cancelling" ? "canceling" : "in_progress",
    request_counts: counts,
    created_at: time(batch.created_at)!,
    expires_at: time(batch.expires_at)!,
    ended_at: time(endedAt),
    archived_at: null,
    cancel_initiated_at: time(batch.cancelling_at),
    results_url: ended ? resultsUrl : null,
  };
}
