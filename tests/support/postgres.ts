/**
 * PostgreSQL for the tests: the server `npm test` provides (its URL in
 * `BATCHSPOOL_TEST_DATABASE_URL`, set by the user or started by
 * `scripts/test.mjs`), and a fresh schema per test, dropped afterwards.
 */
import process from "node:process";
import postgres from "postgres";
import { createPostgresStorage, type PostgresStorageOptions } from "../../src/storage/postgres/postgres_storage.ts";
import type { Storage } from "../../src/storage/types.ts";

/** The test server's URL. @throws when there is none: the suites that need it must fail, not skip. */
export function databaseUrl(): string {
  const url = process.env.BATCHSPOOL_TEST_DATABASE_URL;
  if (!url) {
    throw new Error(
      "no PostgreSQL for this test: set BATCHSPOOL_TEST_DATABASE_URL, or run the tests with `npm test`, which starts one",
    );
  }
  return url;
}

let admin: postgres.Sql | null = null;
/** A small client for creating and dropping schemas; its connections close when idle. */
function adminSql(): postgres.Sql {
  admin ??= postgres(databaseUrl(), { max: 2, idle_timeout: 1, onnotice: () => {} });
  return admin;
}

/** A schema name no other test uses. */
export function freshSchemaName(): string {
  return `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 20)}`;
}

/** Drops a test's schema and everything in it. */
export async function dropSchema(schema: string): Promise<void> {
  await adminSql().unsafe(`drop schema if exists "${schema}" cascade`);
}

/**
 * Flips one bit of byte `at` of a blob or a log in `schema`, behind
 * batchspool's back (same length: only a digest can tell).
 */
export async function flipStoredByte(schema: string, area: "blobs" | "logs", key: string, at: number): Promise<void> {
  const sql = adminSql();
  const [row] = area === "blobs"
    ? await sql`select c.ctid::text as row, ${at} - c.seq * b.chunk_bytes as offset
        from ${sql(schema)}.blobs b join ${sql(schema)}.blob_chunks c using (upload_id)
        where b.key = ${key} and c.seq = ${at} / b.chunk_bytes`
    : await sql`select ctid::text as row, ${at} - start_offset as offset from ${sql(schema)}.log_groups
        where key = ${key} and start_offset <= ${at} and end_offset > ${at}`;
  if (!row) throw new Error(`no byte ${at} in ${area} ${key}`);
  const table = area === "blobs" ? "blob_chunks" : "log_groups";
  await sql`update ${sql(schema)}.${sql(table)} set data = set_byte(data, ${row.offset}::int, get_byte(data, ${row.offset}::int) # 32)
    where ctid = ${row.row}::tid`;
}

/**
 * Flips one bit of a byte of a PostgreSQL ledger's result file (`batches/<id>/output` or `…/errors`), in
 * the results table, behind batchspool's back: byte `at` of its groups' records taken by first line
 * (the file's own order, where no two groups overlap).
 */
export async function flipResultByte(schema: string, key: string, at: number): Promise<void> {
  const [, batchId, kind] = /^batches\/([^/]+)\/(output|errors)$/.exec(key)!;
  const sql = adminSql();
  const rows = await sql`select first_line, records from ${sql(schema)}.cluster_result_groups
    where batch_id = ${batchId} and is_error = ${kind === "errors"} order by first_line`;
  let offset = 0;
  for (const row of rows) {
    const bytes = new TextEncoder().encode(row.records as string);
    if (at < offset + bytes.length) {
      bytes[at - offset] ^= 0x20;
      const records = new TextDecoder().decode(bytes);
      await sql`update ${sql(schema)}.cluster_result_groups set records = ${records}
        where batch_id = ${batchId} and first_line = ${row.first_line}`;
      return;
    }
    offset += bytes.length + 1;
  }
  throw new Error(`no byte ${at} in results file ${key}`);
}

/** A PostgreSQL storage in a schema of its own, which closing drops. */
export async function openTestPostgresStorage(
  options: Partial<PostgresStorageOptions> = {},
): Promise<Storage & { schema: string }> {
  const schema = options.schema ?? freshSchemaName();
  const storage = await createPostgresStorage({ url: databaseUrl(), schema, ...options });
  return {
    ...storage,
    kind: storage.kind,
    schema,
    async close() {
      await storage.close();
      await dropSchema(schema);
    },
  };
}
