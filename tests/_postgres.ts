/**
 * PostgreSQL for the tests: the server `npm test` provides (its URL in
 * `BATCHSPOOL_TEST_DATABASE_URL`, set by the user or started by
 * `scripts/test.mjs`), and a fresh schema per test, dropped afterwards.
 */
import process from "node:process";
import postgres from "postgres";
import { createPostgresStorage, type PostgresStorageOptions } from "../src/storage/postgres/postgres_storage.ts";
import type { Storage } from "../src/storage/types.ts";

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
