/**
 * The PostgreSQL storage adapter: files, results and state in one database,
 * with the data directory's guarantees (see each store's module).
 *
 * Tables live in their own schema (default `batchspool`), created and
 * migrated at start (`migrations.ts`), so one database can hold several
 * deployments. Any number of engines may share a schema, each a node of its
 * cluster (`src/engine/ledger/postgres/`); a program that wants a schema to
 * itself asks for `exclusive` (`exclusive_lock.ts`).
 *
 * @module
 */
import postgres from "postgres";
import type { Logger } from "../../shared/logger.ts";
import { SyncedClock } from "../../shared/synced_clock.ts";
import { StorageError } from "../errors.ts";
import type { Storage } from "../types.ts";
import { createPostgresBlobStore, removeAbandonedUploads } from "./blobs.ts";
import { createPostgresDocumentStore } from "./documents.ts";
import { takeSchemaLock } from "./exclusive_lock.ts";
import { createPostgresLogStore } from "./logs.ts";
import { migrate, SCHEMA_NAME } from "./migrations.ts";
import { BYTEA, query } from "./shared.ts";

/** Options for {@link createPostgresStorage}. */
export interface PostgresStorageOptions {
  /** A connection URL, e.g. `postgres://user:password@host:5432/database`. */
  url: string;
  /** The schema that holds batchspool's tables (default `batchspool`); created when missing. */
  schema?: string;
  /** Most connections to the database (default 10). */
  maxConnections?: number;
  /**
   * Whether this process takes the schema's lock, so that no other may use
   * it (default false: engines on one schema are a cluster's nodes, and
   * coordinate through its tables).
   */
  exclusive?: boolean;
  /**
   * The database ends a session of this server that stays idle inside a
   * transaction this long (none by default): on a cluster, a node paused
   * mid-transaction must not keep its row locks from the others.
   */
  idleInTransactionTimeoutMs?: number;
  /**
   * How often a live upload marks itself alive (default 60 s): uploads not
   * marked for ten minutes, by the database's clock, are removed as abandoned.
   */
  uploadHeartbeatMs?: number;
  /** How long to wait at start for the schema's lock, held by a server that just died (default 10 s). */
  lockWaitMs?: number;
  /** Called once if this server loses its lock on the schema (its session to the database ended). */
  onLockLost?(error: StorageError): void;
  /** Where waiting for the lock and losing it are reported. */
  logger?: Logger;
}

/** The default schema. */
export const DEFAULT_SCHEMA = "batchspool";

/** A PostgreSQL storage: where its database is, for the engine's work ledger, which opens connections of its own. */
export interface PostgresStorage extends Storage {
  readonly kind: "postgres";
  readonly database: { url: string; schema: string };
}

/** Whether a storage is a PostgreSQL one (an engine on it is a node of its schema's cluster). */
export function isPostgresStorage(storage: Storage): storage is PostgresStorage {
  return storage.kind === "postgres" && typeof (storage as Partial<PostgresStorage>).database?.url === "string";
}

/**
 * Connects to PostgreSQL, creates or migrates the schema, and takes its lock.
 *
 * @throws {StorageError} `locked` when `exclusive` and another process uses the schema; `io` when the database cannot be reached
 * @example
 * ```ts
 * const storage = await createPostgresStorage({ url: "postgres://batchspool@127.0.0.1/batchspool" });
 * const engine = createBatchEngine({ storage, target: createMockTarget() });
 * ```
 */
export async function createPostgresStorage(options: PostgresStorageOptions): Promise<PostgresStorage> {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  if (!SCHEMA_NAME.test(schema)) {
    throw new StorageError("invalid_key", `schema name ${JSON.stringify(schema)} is not a plain lower-case identifier`);
  }
  const sql = postgres(options.url, {
    max: options.maxConnections ?? 10,
    onnotice: () => {},
    // Every statement runs in the schema; nothing falls back to `public`.
    connection: {
      search_path: `"${schema}"`,
      application_name: "batchspool",
      ...(options.idleInTransactionTimeoutMs ? { idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs } : {}),
    },
    types: { bytea: BYTEA },
  });
  let lock: Awaited<ReturnType<typeof takeSchemaLock>> | undefined;
  // The nodes of a cluster stamp and compare times by the database's clock, not by their own.
  const clock = new SyncedClock(async () => {
    const [{ ms }] = await sql`select extract(epoch from clock_timestamp())::float8 * 1000 as ms`;
    return ms;
  });
  try {
    await migrate(sql, schema);
    if (options.exclusive) {
      lock = await takeSchemaLock(sql, schema, { waitMs: options.lockWaitMs, logger: options.logger, onLost: options.onLockLost });
    }
    await removeAbandonedUploads(sql);
    await clock.start();
  } catch (error) {
    clock.stop();
    await sql.end({ timeout: 1 }).catch(() => {});
    if (error instanceof StorageError) throw error;
    throw new StorageError("io", `cannot open database schema ${schema}: ${(error as Error)?.message ?? error}`, { cause: error });
  }
  let closed = false;
  const ensureOpen = () => {
    if (closed) throw new StorageError("closed", `storage in schema ${schema} is closed`);
    if (lock?.lost) throw lock.lost;
  };
  return {
    kind: "postgres",
    database: { url: options.url, schema },
    clock,
    blobs: createPostgresBlobStore(sql, ensureOpen, { uploadHeartbeatMs: options.uploadHeartbeatMs }),
    logs: createPostgresLogStore(sql, ensureOpen),
    documents: createPostgresDocumentStore(sql, ensureOpen),
    async removeLeftovers() {
      ensureOpen();
      return await query("remove abandoned uploads", undefined, () => removeAbandonedUploads(sql));
    },
    async close() {
      if (closed) return;
      closed = true;
      clock.stop();
      await lock?.release();
      await sql.end({ timeout: 5 });
    },
  };
}
