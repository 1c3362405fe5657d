/**
 * Where the batch layer keeps things in storage. Every key is built here.
 *
 * @module
 */

/** Document of a file's record. */
export const fileDocKey = (owner: string, fileId: string): string => `tenants/${owner}/files/${fileId}`;
/** Prefix of an owner's file records. */
export const fileDocPrefix = (owner: string): string => `tenants/${owner}/files/`;
/** Blob of an uploaded file's bytes. */
export const fileBlobKey = (fileId: string): string => `files/${fileId}`;
/** Whether a key is an uploaded file's blob. */
export const isFileBlobKey = (key: string): boolean => key.startsWith("files/");
/** Document of a batch's record. */
export const batchDocKey = (owner: string, batchId: string): string => `tenants/${owner}/batches/${batchId}`;
/** Prefix of an owner's batch records. */
export const batchDocPrefix = (owner: string): string => `tenants/${owner}/batches/`;
/** Index entry of a batch that has not ended (what recovery resumes). */
export const activeBatchKey = (batchId: string): string => `active/${batchId}`;
/** Prefix of the active-batch index. */
export const ACTIVE_PREFIX = "active/";
/** Log of a batch's output records (2xx responses). */
export const outputLogKey = (batchId: string): string => `batches/${batchId}/output`;
/** Log of a batch's error records. */
export const errorLogKey = (batchId: string): string => `batches/${batchId}/errors`;
/** Document of checkpoint number `sequence`. */
export const checkpointKey = (sequence: number): string => `checkpoints/${String(sequence).padStart(12, "0")}`;
/** Prefix of checkpoints. */
export const CHECKPOINT_PREFIX = "checkpoints/";
/** Index entry of a file that expires: ordered by expiry time, so a sweep reads only what has expired. */
export const fileExpiryKey = (expiresAt: number, fileId: string): string =>
  `${FILE_EXPIRY_PREFIX}${String(expiresAt).padStart(12, "0")}-${fileId}`;
/** Prefix of the file expiry index. */
export const FILE_EXPIRY_PREFIX = "file-expiry/";
/** The expiry time and file of an index entry's key, or null for a key that is not one. */
export function parseFileExpiryKey(key: string): { expiresAt: number; fileId: string } | null {
  const match = /^file-expiry\/(\d{12})-(file-[0-9a-f]+)$/.exec(key);
  return match ? { expiresAt: Number(match[1]), fileId: match[2] } : null;
}
/** Present once the file expiry index holds every file (files recorded before it were added once). */
export const EXPIRY_INDEX_MARKER = "meta/file-expiry-index";

/** A webhook event waiting for delivery. */
export const webhookOutboxKey = (eventId: string): string => `webhooks/outbox/${eventId}`;
/** Prefix of the webhook events waiting for delivery. */
export const WEBHOOK_OUTBOX_PREFIX = "webhooks/outbox/";
