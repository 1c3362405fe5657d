/**
 * One server at a time on a schema: a session-level advisory lock held on a
 * connection reserved for it. PostgreSQL releases it when that session ends,
 * so a server killed with `kill -9` frees it as soon as the database sees its
 * connection close; a second live server is refused, naming the first.
 *
 * The holder checks its session every `heartbeatMs`: if it is gone (the
 * database restarted, the network failed), another server may have taken the
 * schema, so the lock is lost and every further storage call fails.
 *
 * @module
 */
import { hostname } from "node:os";
import process from "node:process";
import type postgres from "postgres";
import { unrefTimer } from "../../runtime/unref_timer.ts";
import { type Logger, silentLogger } from "../../shared/logger.ts";
import { StorageError } from "../errors.ts";
import { advisoryKey } from "./migrations.ts";

/** A held schema lock. */
export interface SchemaLock {
  /** Set once the lock's session was lost: nothing may be written any more. */
  readonly lost: StorageError | null;
  release(): Promise<void>;
}

/** Options for {@link takeSchemaLock}. */
export interface SchemaLockOptions {
  /** How long to wait for a lock a server that just died may still hold (default 10 s). */
  waitMs?: number;
  /** How often the holder checks its session (default 2 s). */
  heartbeatMs?: number;
  logger?: Logger;
  onLost?(error: StorageError): void;
}

/**
 * Takes the schema's lock, waiting up to `waitMs` for a holder whose session
 * the database has not yet closed.
 *
 * @throws {StorageError} `locked` when another live server holds it
 */
export async function takeSchemaLock(sql: postgres.Sql, schema: string, options: SchemaLockOptions = {}): Promise<SchemaLock> {
  const waitMs = options.waitMs ?? 10_000;
  const logger = options.logger ?? silentLogger;
  const key = advisoryKey("server", schema).toString();
  const session = await sql.reserve();
  const deadline = performance.now() + waitMs;
  let warned = false;
  try {
    for (;;) {
      const [{ locked }] = await session`select pg_try_advisory_lock(${key}::bigint) as locked`;
      if (locked) break;
      const [holder] = await session`select pid, host, started_at from server_lock where id = 1`;
      const who = holder ? `process ${holder.pid} on ${holder.host}` : "another server";
      if (performance.now() >= deadline) {
        throw new StorageError(
          "locked",
          `database schema ${schema} is in use by ${who}: stop that server or use another --database-schema`,
        );
      }
      if (!warned) logger.warn(`database schema ${schema} is locked by ${who}; waiting up to ${Math.ceil(waitMs / 1000)} s for it`);
      warned = true;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    await session`insert into server_lock (id, pid, host, started_at) values (1, ${process.pid}, ${hostname()}, now())
      on conflict (id) do update set pid = excluded.pid, host = excluded.host, started_at = excluded.started_at`;
  } catch (error) {
    session.release();
    if (error instanceof StorageError) throw error;
    throw new StorageError("io", `cannot lock database schema ${schema}: ${(error as Error).message}`, { cause: error });
  }

  let lost: StorageError | null = null;
  let released = false;
  let beating: Promise<unknown> | null = null;
  const timer = setInterval(() => {
    if (beating || released || lost) return;
    beating = session`select 1`.then(
      () => {},
      (error) => {
        if (released) return;
        lost = new StorageError("locked", `this server lost its lock on database schema ${schema}: ${(error as Error).message}`);
        clearInterval(timer);
        logger.error(lost.message);
        options.onLost?.(lost);
      },
    ).finally(() => (beating = null));
  }, options.heartbeatMs ?? 2_000);
  unrefTimer(timer);
  return {
    get lost() {
      return lost;
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await beating;
      if (!lost) await session`select pg_advisory_unlock(${key}::bigint)`.catch(() => {});
      session.release();
    },
  };
}
