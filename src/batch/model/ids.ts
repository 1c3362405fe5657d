/**
 * Identifiers of files, batches and result records.
 *
 * File and batch ids are 12 hex digits of creation time (so key order is
 * creation order, which listing relies on) followed by 96 random bits, so
 * they cannot be guessed. Ids taken from URLs are checked with the `is…`
 * functions before they become part of a storage key.
 *
 * @module
 */

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));
const POOL_SIZE = 4096;
let pool = new Uint8Array(0);
let poolOffset = 0;

/**
 * Random hex from a pool refilled 4 KiB at a time: one `getRandomValues` call
 * serves hundreds of ids instead of one (it is costly per call on Node).
 */
function randomHex(bytes: number): string {
  if (poolOffset + bytes > pool.length) {
    pool = crypto.getRandomValues(new Uint8Array(POOL_SIZE));
    poolOffset = 0;
  }
  let out = "";
  for (let i = 0; i < bytes; i++) out += HEX[pool[poolOffset + i]];
  poolOffset += bytes;
  return out;
}

let lastTime = 0;

/**
 * The time part of an id: milliseconds, but strictly increasing within the
 * process (ids made in the same millisecond take the next one), so ids sort in
 * the order they were made.
 */
function timeHex(now: number): string {
  lastTime = Math.max(Math.floor(now), lastTime + 1);
  return lastTime.toString(16).padStart(12, "0").slice(-12);
}

const FILE_ID = /^file-[0-9a-f]{36}$/;
const BATCH_ID = /^batch_[0-9a-f]{36}$/;

/** A new file id, e.g. `file-0193a4f2c1d8…`. */
export function newFileId(now: number = Date.now()): string {
  return `file-${timeHex(now)}${randomHex(12)}`;
}

/** A new batch id, e.g. `batch_0193a4f2c1d8…`. */
export function newBatchId(now: number = Date.now()): string {
  return `batch_${timeHex(now)}${randomHex(12)}`;
}

/** Whether `id` has the shape of a batchspool file id. */
export function isFileId(id: string): boolean {
  return FILE_ID.test(id);
}

/** Whether `id` has the shape of a batchspool batch id. */
export function isBatchId(id: string): boolean {
  return BATCH_ID.test(id);
}

/**
 * The id of a result record: `batch_req_<random>_<line>`. The suffix is the
 * 1-based input line, which is how recovery learns which lines are finished by
 * reading only the start of each record.
 */
export function newRequestId(line: number): string {
  return `batch_req_${randomHex(8)}_${line}`;
}

const REQUEST_ID_PREFIX = /^\{"id":"batch_req_[0-9a-f]+_(\d+)"/;

/** The input line named by a result record's leading `id`, or undefined. */
export function lineOfRecord(record: string): number | undefined {
  const match = REQUEST_ID_PREFIX.exec(record);
  return match ? Number(match[1]) : undefined;
}
