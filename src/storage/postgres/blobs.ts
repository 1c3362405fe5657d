/**
 * Blobs in PostgreSQL, as page-sized chunk rows, written a few at a time and
 * read about a megabyte at a time: memory stays a few statements' worth per
 * put and per reader, whatever the blob's size.
 *
 * Durability: a put writes its chunks under an upload of its own
 * (`blob_uploads`), committed as they go, then makes the blob name that
 * upload in one transaction, which also removes the chunks of the upload it
 * replaces: nothing is visible under the key until every byte is durable, and
 * a crash before that leaves an unnamed upload.
 *
 * Leftovers: a live put marks its upload alive on a timer, however slowly its
 * source sends, and uploads unmarked for ten minutes (by the database's clock)
 * are removed as abandoned, when a store opens and on the engine's schedule
 * ({@link removeAbandonedUploads}). A writer paused longer than that finds its
 * upload gone, and its put fails instead of naming a blob with chunks missing.
 *
 * @module
 */
import type postgres from "postgres";
import type { MarkedDigest } from "../../integrity/digest_marks.ts";
import { concatBytes } from "../../shared/concat_bytes.ts";
import { iteratorStream } from "../../shared/iterator_stream.ts";
import { BlobHash, startMarkingHash } from "../blob_hash.ts";
import { BlobSourceError, pumpBlobSource } from "../blob_source.ts";
import { StorageError } from "../errors.ts";
import { assertValidKey } from "../keys.ts";
import type { BlobInfo, BlobStat, BlobStore, ByteRange, KeyPage, ListOptions, PutBlobOptions } from "../types.ts";
import { unrefTimer } from "../../runtime/unref_timer.ts";
import { listKeys, query, StatementParams } from "./shared.ts";

/** Bytes per chunk row: a row fits in one page of the table (8 KiB), so PostgreSQL stores it whole, without TOAST. */
const CHUNK_BYTES = 8000;
/** Chunk rows written by one statement (128 KB: a larger statement's message buffer, grown step by step by the client, left more garbage behind than the collector frees promptly). */
const CHUNKS_PER_WRITE = 16;
/** Statements of one put in flight at once (the source is read while they are written). */
const WRITES_IN_FLIGHT = 2;
/** Chunks fetched by one query while a blob is read (a megabyte). */
const CHUNKS_PER_READ = 128;
/** Uploads not marked alive for this long were abandoned (their writer died, or was paused as long). */
const ABANDONED_AFTER_SECONDS = 600;
/** How often a live put marks its upload alive, by default: ten chances before it would look abandoned. */
export const UPLOAD_HEARTBEAT_MS = 60_000;

/** Creates the blob store on `sql` (whose search path is the schema). */
export function createPostgresBlobStore(
  sql: postgres.Sql,
  ensureOpen: () => void,
  { uploadHeartbeatMs = UPLOAD_HEARTBEAT_MS }: { uploadHeartbeatMs?: number } = {},
): BlobStore {
  const checked = (key: string) => {
    ensureOpen();
    assertValidKey(key);
  };

  /** Reads an upload's chunks back and hashes them (when a put's hasher could not give the digest). */
  const hashUpload = async (uploadId: string, bytes: number, options: PutBlobOptions): Promise<MarkedDigest> => {
    const hash = startMarkingHash(options);
    for await (const chunk of chunksOf(sql, "blob", undefined, uploadId, 0, bytes, CHUNK_BYTES)) hash.update(chunk);
    return hash.finish();
  };

  return {
    async put(key: string, source: ReadableStream<Uint8Array> | Uint8Array, options: PutBlobOptions = {}): Promise<BlobInfo> {
      checked(key);
      const uploadId = crypto.randomUUID();
      const hash = new BlobHash(options);
      await query(`start blob ${key}`, key, () => sql`insert into blob_uploads (upload_id, key) values (${uploadId}, ${key})`);
      const alive = keepUploadAlive(sql, key, uploadId, uploadHeartbeatMs);
      const writes = new Set<Promise<unknown>>();
      let gathered: Uint8Array[] = [];
      let gatheredBytes = 0;
      let seq = 0;
      /** Writes what is gathered (a megabyte, or the rest) as chunk rows, in one statement. */
      const writeChunks = async () => {
        const data = gathered.length === 1 ? gathered[0] : concatBytes(gathered, gatheredBytes);
        gathered = [];
        gatheredBytes = 0;
        while (writes.size >= WRITES_IN_FLIGHT) await Promise.race(writes);
        alive.check();
        const params = new StatementParams();
        const idParam = params.value(uploadId, "uuid");
        const rows = [];
        for (let at = 0; at < data.length; at += CHUNK_BYTES) {
          rows.push(`(${idParam}, ${params.value(seq++, "integer")}, ${params.bytes(data.subarray(at, at + CHUNK_BYTES))})`);
        }
        const write = sql.unsafe(`insert into blob_chunks (upload_id, seq, data) values ${rows.join(", ")}`, params.values);
        writes.add(write);
        // A failed write stays in the set: the next wait on it (or the last one) throws.
        write.then(() => writes.delete(write), () => {});
      };
      try {
        // Chunks are cut at exactly CHUNK_BYTES, so that a read finds any byte's chunk by division.
        const statementBytes = CHUNK_BYTES * CHUNKS_PER_WRITE;
        const bytes = await pumpBlobSource(key, source, options, hash, async (chunk) => {
          for (let at = 0; at < chunk.length;) {
            const take = Math.min(chunk.length - at, statementBytes - gatheredBytes);
            gathered.push(chunk.subarray(at, at + take));
            gatheredBytes += take;
            at += take;
            if (gatheredBytes === statementBytes) await writeChunks();
          }
        });
        if (gatheredBytes > 0) await writeChunks();
        await query(`write blob ${key}`, key, () => Promise.all(writes));
        const info = await hash.finish(key, () => hashUpload(uploadId, bytes, options));
        await query(`write blob ${key}`, key, () =>
          sql.begin(async (tx) => {
            // Its upload still there (not removed as abandoned while this writer was paused): every chunk is.
            const [own] = await tx`delete from blob_uploads where upload_id = ${uploadId} returning upload_id`;
            if (!own) throw alive.lostError();
            const [previous] = await tx`select upload_id from blobs where key = ${key} for update`;
            await tx`insert into blobs (key, upload_id, bytes, chunk_bytes) values (${key}, ${uploadId}, ${bytes}, ${CHUNK_BYTES})
              on conflict (key) do update set upload_id = excluded.upload_id, bytes = excluded.bytes, chunk_bytes = excluded.chunk_bytes`;
            if (previous) await tx`delete from blob_chunks where upload_id = ${previous.upload_id}`;
          }));
        await alive.stop();
        return info;
      } catch (error) {
        await Promise.allSettled(writes);
        await removeUpload(sql, uploadId).catch(() => {});
        await alive.stop();
        if (error instanceof BlobSourceError) throw error.error;
        if (error instanceof StorageError) throw error;
        throw new StorageError("io", `cannot write blob ${key}: ${(error as Error)?.message ?? error}`, { key, cause: error });
      }

    },

    async get(key: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
      checked(key);
      const [row] = await query(`read blob ${key}`, key, () =>
        sql`select upload_id, bytes, chunk_bytes from blobs where key = ${key}`);
      if (!row) throw new StorageError("not_found", `no blob ${key}`, { key });
      const size = Number(row.bytes);
      const start = Math.min(range?.start ?? 0, size);
      const end = Math.max(start, Math.min(range?.end ?? size, size));
      return iteratorStream(chunksOf(sql, `blob ${key}`, key, row.upload_id, start, end, row.chunk_bytes));
    },

    async stat(key: string): Promise<BlobStat | null> {
      checked(key);
      const [row] = await query(`stat blob ${key}`, key, () => sql`select bytes from blobs where key = ${key}`);
      return row ? { key, bytes: Number(row.bytes) } : null;
    },

    async delete(key: string): Promise<boolean> {
      checked(key);
      return await query(`delete blob ${key}`, key, () =>
        sql.begin(async (tx) => {
          const [row] = await tx`delete from blobs where key = ${key} returning upload_id`;
          if (row) await tx`delete from blob_chunks where upload_id = ${row.upload_id}`;
          return Boolean(row);
        }));
    },

    list(prefix: string, options: ListOptions = {}): Promise<KeyPage> {
      ensureOpen();
      return listKeys(sql, "blobs", prefix, options);
    },
  };
}

/** Deletes an upload's chunks and its row. */
async function removeUpload(sql: postgres.Sql, uploadId: string): Promise<void> {
  await sql`delete from blob_chunks where upload_id = ${uploadId}`;
  await sql`delete from blob_uploads where upload_id = ${uploadId}`;
}

/**
 * Marks a live upload alive every `heartbeatMs` while its put runs, whatever
 * its source does. `check` throws once a mark found the upload gone.
 */
function keepUploadAlive(sql: postgres.Sql, key: string, uploadId: string, heartbeatMs: number) {
  let lost = false;
  let beating: Promise<unknown> = Promise.resolve();
  const lostError = () =>
    new StorageError("io", `cannot write blob ${key}: its upload was removed as abandoned (this writer was paused for over ${ABANDONED_AFTER_SECONDS} s)`, { key });
  const timer = setInterval(() => {
    beating = sql`update blob_uploads set updated_at = now() where upload_id = ${uploadId} returning upload_id`
      .then((rows) => { if (!rows.length) lost = true; }, () => {});
  }, heartbeatMs);
  unrefTimer(timer);
  return {
    lostError,
    check(): void {
      if (lost) throw lostError();
    },
    async stop(): Promise<void> {
      clearInterval(timer);
      await beating;
    },
  };
}

/**
 * Deletes the uploads no put will finish: not marked alive for ten minutes by
 * the database's clock (their writer died, or is paused and will find them
 * gone). Each is removed only if it is still that old when it is removed.
 * Returns how many.
 */
export async function removeAbandonedUploads(sql: postgres.Sql): Promise<number> {
  // One statement: an upload and its chunks go together, or neither does.
  const [{ removed }] = await sql`with abandoned as (
      delete from blob_uploads where updated_at < now() - make_interval(secs => ${ABANDONED_AFTER_SECONDS}) returning upload_id
    ), chunks as (
      delete from blob_chunks where upload_id in (select upload_id from abandoned)
    )
    select count(*)::int as removed from abandoned`;
  return removed;
}

/**
 * Throws for chunks found missing while a blob was read: `corrupt` when the
 * key still names that upload (its bytes are lost: reading again cannot
 * help), else `io` (the blob was deleted or replaced while it was read).
 */
async function missingChunks(
  sql: postgres.Sql,
  what: string,
  key: string | undefined,
  uploadId: string,
  from: number,
  chunkBytes: number,
  found: number[],
): Promise<never> {
  const [named] = key === undefined ? [] : await query(`read ${what}`, key, () =>
    sql`select 1 from blobs where key = ${key} and upload_id = ${uploadId}`);
  if (!named) throw new StorageError("io", `${what} changed while it was read`, { key });
  let seq = from / chunkBytes;
  while (found.includes(seq)) seq++;
  throw new StorageError("corrupt", `${what} has lost bytes ${seq * chunkBytes}–${(seq + 1) * chunkBytes - 1} (chunk ${seq} is missing)`, { key });
}

/** Bytes [start, end) of an upload, chunk by chunk, a few chunks per query. */
async function* chunksOf(
  sql: postgres.Sql,
  what: string,
  key: string | undefined,
  uploadId: string,
  start: number,
  end: number,
  chunkBytes: number,
): AsyncGenerator<Uint8Array> {
  let position = start;
  while (position < end) {
    const first = Math.floor(position / chunkBytes);
    const last = Math.min(Math.floor((end - 1) / chunkBytes), first + CHUNKS_PER_READ - 1);
    const rows = await query(`read ${what}`, undefined, () =>
      sql`select seq, data from blob_chunks where upload_id = ${uploadId} and seq >= ${first} and seq <= ${last} order by seq`);
    if (rows.length !== last - first + 1) await missingChunks(sql, what, key, uploadId, first * chunkBytes, chunkBytes, rows.map((row) => row.seq));
    for (const row of rows) {
      const chunkStart = row.seq * chunkBytes;
      const bytes = (row.data as Uint8Array).subarray(position - chunkStart, Math.min(end, chunkStart + row.data.length) - chunkStart);
      position += bytes.length;
      if (bytes.length) yield bytes;
    }
  }
}
