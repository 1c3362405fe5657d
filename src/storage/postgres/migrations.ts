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
export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

export const MIGRATIONS: readonly Migration[] = [
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
  {
    version: 2,
    name: "cluster: nodes, work items with leases, fenced results",
    statements: [
      // Each node's heartbeat; `host`, `boot_id`, `pid_namespace` and `pid` let a node on the same
      // machine prove a dead one gone without waiting for its leases to lapse.
      `create table cluster_nodes (
        node_id text primary key,
        host text not null,
        boot_id text,
        pid_namespace text,
        pid integer not null,
        started_at timestamptz not null default now(),
        heartbeat_at timestamptz not null default now()
      )`,
      // A batch the cluster works on until it ends: who owns it, whether it must stop, and how many
      // slices are not yet done (the commit that brings it to 0 creates the finalize item).
      `create table cluster_batches (
        batch_id text collate "C" primary key,
        owner text not null,
        input_file_id text not null,
        expires_at bigint not null,
        stop text,
        failure text,
        slices_left integer,
        created_at timestamptz not null default now()
      )`,
      // Work items: a batch's validation (item -1), its slices of lines (0, 1, …) and its finalizing
      // (item -2). A claim sets node and lease and raises the token; every write of the holder
      // names the token it claimed with, so a holder whose lease was taken writes nothing.
      `create table cluster_work (
        batch_id text collate "C" not null,
        item integer not null,
        kind text not null,
        first_line integer not null default 0,
        line_count integer not null default 0,
        byte_start bigint not null default 0,
        byte_end bigint not null default 0,
        sha256 text,
        done boolean not null default false,
        node_id text,
        token integer not null default 0,
        lease_until timestamptz,
        completed integer not null default 0,
        failed integer not null default 0,
        usage jsonb,
        primary key (batch_id, item)
      )`,
      `create index cluster_work_claimable on cluster_work (lease_until) where not done`,
      // One result per input line, whoever ran it: the primary key is the last guard of exactly once
      // (replaced by result groups in version 3).
      `create table cluster_results (
        batch_id text collate "C" not null,
        line integer not null,
        is_error boolean not null,
        record text not null,
        primary key (batch_id, line)
      )`,
    ],
  },
  {
    version: 3,
    name: "results recorded in groups, kept as result files, each group with its digest",
    statements: [
      // A group of one kind's results as one write recorded them, in line order: a row per group
      // costs the database a fraction of a row per line. A batch's results stay after it ends: its
      // output and error files are made of them. Each group's SHA-256, computed by the node that
      // recorded it, is checked whenever it is read. Lines are distinct across a batch's groups
      // (fenced writes of the lines without a result), so the first line keys a group.
      `create table cluster_result_groups (
        batch_id text collate "C" not null,
        first_line integer not null,
        last_line integer not null,
        is_error boolean not null,
        lines integer[] not null,
        records text not null,
        digest bytea,
        primary key (batch_id, first_line)
      )`,
      // Results of batches running when the schema was upgraded: a group each, without a digest.
      `insert into cluster_result_groups (batch_id, first_line, last_line, is_error, lines, records)
        select batch_id, line, line, is_error, array[line], record from cluster_results`,
      `drop table cluster_results`,
    ],
  },
  {
    version: 4,
    name: "batches scheduled by priority, and paused",
    statements: [
      // A batch's priority orders the claims of slices (higher first); a paused batch's slices are not
      // claimed unless it must stop.
      `alter table cluster_batches add column priority integer not null default 0`,
      `alter table cluster_batches add column paused boolean not null default false`,
      // The transaction that recorded a group: results read while a batch runs are given out in this order,
      // up to the oldest transaction still running (every group before it is committed or never will be).
      `alter table cluster_result_groups add column txid bigint not null default 0`,
      `alter table cluster_result_groups alter column txid set default txid_current()`,
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
