/**
 * Append-only logs in PostgreSQL: a log is its length (`log_heads`) and the
 * groups of records appended to it (`log_groups`, in rows that fit a page),
 * each row with the byte range it occupies.
 *
 * Durability (group commit): `append` queues its records; one statement (one
 * transaction) at a time takes what is queued, for every log, and commits
 * it: an append resolves once that commit is durable, and concurrent
 * appenders, of one log or of many, share it. A group's place is taken from its log's length in
 * the same transaction (a row lock), so appends from any number of
 * connections stay in order. A failed transaction leaves nothing: there is no
 * torn tail to cut.
 *
 * @module
 */
import type postgres from "postgres";
import { concatBytes } from "../../shared/concat_bytes.ts";
import { StorageError } from "../errors.ts";
import { assertValidKey } from "../keys.ts";
import type { AppendResult, LogStore } from "../types.ts";
import { query, StatementParams } from "./shared.ts";

interface PendingAppend {
  key: string;
  bytes: Uint8Array;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

const encoder = new TextEncoder();
/** Rows fetched by one query while a log is read (up to a megabyte). */
const GROUPS_PER_READ = 128;
/**
 * Bytes of a row, key included: a row fits in one page of the table (8 KiB),
 * so PostgreSQL stores it whole, without TOAST (see the migrations).
 */
const ROW_BYTES = 8000;
/**
 * Bytes one commit takes from the queue (an append larger than this goes
 * alone): the client grows a statement's message buffer step by step, and
 * larger ones left garbage the collector was slow to free.
 */
const COMMIT_BYTES = 1024 * 1024;

/** Creates the log store on `sql` (whose search path is the schema). */
export function createPostgresLogStore(sql: postgres.Sql, ensureOpen: () => void): LogStore {
  const queue: PendingAppend[] = [];
  let flushing = false;

  const checked = (key: string) => {
    ensureOpen();
    assertValidKey(key);
  };

  /** Commits what is queued, one statement at a time (about a megabyte each), until nothing is. */
  const flush = async () => {
    flushing = true;
    while (queue.length) {
      let take = 0;
      let bytes = 0;
      while (take < queue.length && (take === 0 || bytes + queue[take].bytes.length <= COMMIT_BYTES)) {
        bytes += queue[take].bytes.length;
        take++;
      }
      const batch = queue.splice(0, take);
      // The appends of each log, in order, joined into one group.
      const byKey = new Map<string, PendingAppend[]>();
      for (const append of batch) {
        const list = byKey.get(append.key);
        if (list) list.push(append);
        else byKey.set(append.key, [append]);
      }
      try {
        const ends = await query("append to logs", undefined, () => commitGroups(sql, byKey));
        for (const [key, appends] of byKey) {
          let start = ends.get(key)! - appends.reduce((sum, append) => sum + append.bytes.length, 0);
          for (const append of appends) {
            const end = start + append.bytes.length;
            append.resolve({ start, end });
            start = end;
          }
        }
      } catch (error) {
        for (const append of batch) append.reject(error);
      }
    }
    flushing = false;
  };

  return {
    async append(key: string, records: readonly string[]): Promise<AppendResult> {
      checked(key);
      for (const record of records) {
        if (record.includes("\n")) throw new StorageError("invalid_record", `a record for ${key} contains a newline`, { key });
      }
      return await new Promise<AppendResult>((resolve, reject) => {
        queue.push({ key, bytes: encoder.encode(records.join("\n") + "\n"), resolve, reject });
        if (!flushing) void flush();
      });
    },

    async read(key: string, fromOffset = 0): Promise<ReadableStream<Uint8Array>> {
      checked(key);
      // The log as it is now: appends made while it is read are not in this stream.
      const end = await this.length(key);
      let position = Math.min(fromOffset, end);
      let groups: { start_offset: string; end_offset: string; data: Uint8Array }[] = [];
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            if (groups.length === 0) {
              if (position >= end) return controller.close();
              groups = await query(`read log ${key}`, key, () =>
                sql`select start_offset, end_offset, data from log_groups
                  where key = ${key} and end_offset > ${position} and start_offset < ${end}
                  order by start_offset limit ${GROUPS_PER_READ}`) as unknown as typeof groups;
              if (groups.length === 0) throw new StorageError("io", `log ${key} lost records while it was read`, { key });
            }
            const group = groups.shift()!;
            const start = Number(group.start_offset);
            const bytes = group.data.subarray(position - start, Math.min(Number(group.end_offset), end) - start);
            position += bytes.length;
            controller.enqueue(bytes);
          } catch (error) {
            controller.error(error);
          }
        },
      }, { highWaterMark: 0 });
    },

    async length(key: string): Promise<number> {
      checked(key);
      const rows = await query(`read the length of log ${key}`, key, () => sql`select length from log_heads where key = ${key}`);
      return rows.length ? Number(rows[0].length) : 0;
    },

    async delete(key: string): Promise<boolean> {
      checked(key);
      return await query(`delete log ${key}`, key, () =>
        sql.begin(async (tx) => {
          await tx`delete from log_groups where key = ${key}`;
          return (await tx`delete from log_heads where key = ${key} returning key`).length > 0;
        }));
    },
  };
}

/**
 * Appends each log's group in one statement (one implicit transaction, one
 * round trip): the heads grow by the groups' lengths, and each group's rows
 * take their offsets from its head's new length. Returns each log's new length.
 */
async function commitGroups(sql: postgres.Sql, byKey: Map<string, PendingAppend[]>): Promise<Map<string, number>> {
  const params = new StatementParams();
  const heads: string[] = [];
  const pieces: string[] = [];
  for (const [key, appends] of byKey) {
    const total = appends.reduce((sum, append) => sum + append.bytes.length, 0);
    const data = appends.length === 1 ? appends[0].bytes : concatBytes(appends.map((a) => a.bytes), total);
    const keyParam = params.value(key, "text");
    const totalParam = params.value(total, "bigint");
    heads.push(`(${keyParam}, ${totalParam})`);
    const pieceBytes = ROW_BYTES - encoder.encode(key).length;
    for (let at = 0; at < total; at += pieceBytes) {
      const piece = data.subarray(at, at + pieceBytes);
      pieces.push(
        `(${keyParam}, ${totalParam}, ${params.value(at, "bigint")}, ${params.value(at + piece.length, "bigint")}, ${params.bytes(piece)})`,
      );
    }
  }
  const rows = await sql.unsafe(
    `with heads as (
       insert into log_heads (key, length) values ${heads.join(", ")}
       on conflict (key) do update set length = log_heads.length + excluded.length
       returning key, length
     ), groups as (
       insert into log_groups (key, start_offset, end_offset, data)
       select p.key, h.length - p.total + p.piece_start, h.length - p.total + p.piece_end, p.data
       from (values ${pieces.join(", ")}) as p (key, total, piece_start, piece_end, data)
       join heads h on h.key = p.key
     )
     select key, length from heads`,
    params.values,
  );
  return new Map(rows.map((row) => [row.key as string, Number(row.length)]));
}
