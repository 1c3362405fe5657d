/**
 * The schema batchspool keeps in PostgreSQL, as numbered migrations applied
 * at start. Each runs once, in order, in the transaction that records it;
 * a transaction-level advisory lock makes servers that start at once apply
 * them one after the other (the second finds them done).
 *
 * @module
 */
import type postgres from "postgres";
import { sha256Hex } from "../../integrity/sha256.ts";
import { StorageError } from "../errors.ts";

/** One step of the schema. Statements are unqualified: the connection's search path is the schema. */
interface Migration {
  version: number;
  name: string;
  statements: string[];
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "documents, logs and blobs",
    statements: [
      // Keys compare byte by byte (collation "C"), as the other adapters order them.
      `create table documents (
        key text collate "C" primary key,
        version integer not null,
        envelope text not null
      )`,
      `create table log_heads (
        key text collate "C" primary key,
        length bigint not null
      )`,
      // One row per group commit of a log: its bytes and where they sit in the log.
      `create table log_groups (
        key text collate "C" not null,
        start_offset bigint not null,
        end_offset bigint not null,
        data bytea not null,
        primary key (key, start_offset)
      )`,
      // A blob's bytes are chunks of an upload; the blob names the upload that completed last.
      `create table blobs (
        key text collate "C" primary key,
        upload_id uuid not null,
        bytes bigint not null,
        chunk_bytes integer not null
      )`,
      `create table blob_chunks (
        upload_id uuid not null,
        seq integer not null,
        data bytea not null,
        primary key (upload_id, seq)
      )`,
      `create table blob_uploads (
        upload_id uuid primary key,
        key text collate "C" not null,
        updated_at timestamptz not null default now()
      )`,
      // Rows of bytes are sized to fit a page whole (about 8,000 bytes): stored as they are, neither
      // compressed (CPU on every write, for text read back whole) nor moved to TOAST (a row and an
      // index entry for every 2 KB).
      `alter table log_groups alter column data set storage plain`,
      `alter table blob_chunks alter column data set storage plain`,
      `create table server_lock (
        id integer primary key,
        pid integer not null,
        host text not null,
        started_at timestamptz not null
      )`,
    ],
  },
];

/** The newest schema version this build knows. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1].version;

/** A schema name batchspool accepts: a plain lower-case identifier. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** A 64-bit advisory lock key for `purpose` on `schema`, as PostgreSQL's signed bigint. */
export function advisoryKey(purpose: string, schema: string): bigint {
  return BigInt.asIntN(64, BigInt(`0x${sha256Hex(`batchspool:${purpose}:${schema}`).slice(0, 16)}`));
}

/**
 * Creates the schema if needed and applies the migrations it lacks.
 *
 * @throws {StorageError} `io` when the schema was made by a newer batchspool (it would not understand it)
 */
export async function migrate(sql: postgres.Sql, schema: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${advisoryKey("migrate", schema).toString()}::bigint)`;
    await tx.unsafe(`create schema if not exists "${schema}"`);
    await tx.unsafe(`create table if not exists "${schema}".migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`);
    const applied = new Set((await tx.unsafe(`select version from "${schema}".migrations`)).map((row) => row.version as number));
    const newest = Math.max(0, ...applied);
    if (newest > SCHEMA_VERSION) {
      throw new StorageError(
        "io",
        `schema ${schema} is at version ${newest}, newer than this batchspool knows (${SCHEMA_VERSION}): upgrade batchspool`,
      );
    }
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      for (const statement of migration.statements) await tx.unsafe(statement);
      await tx.unsafe(`insert into "${schema}".migrations (version, name) values ($1, $2)`, [migration.version, migration.name]);
    }
  });
}
