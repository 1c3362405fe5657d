import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { isStorageError } from "../../src/storage/errors.ts";
import { createPostgresStorage } from "../../src/storage/postgres/postgres_storage.ts";
import { SCHEMA_VERSION } from "../../src/storage/postgres/migrations.ts";
import { testStorageContract } from "../support/storage_contract.ts";
import { databaseUrl, dropSchema, freshSchemaName, openTestPostgresStorage } from "../support/postgres.ts";

testStorageContract("postgres", () => openTestPostgresStorage());

test("postgres: a second exclusive opener of a schema is refused, naming the first; once it closes, the schema is free", async () => {
  const schema = freshSchemaName();
  const first = await createPostgresStorage({ url: databaseUrl(), schema, exclusive: true });
  try {
    await assert.rejects(
      createPostgresStorage({ url: databaseUrl(), schema, lockWaitMs: 300, exclusive: true }),
      (error) => isStorageError(error, "locked") && /in use by process \d+ on /.test(error.message),
    );
    await first.close();
    const second = await createPostgresStorage({ url: databaseUrl(), schema, lockWaitMs: 300, exclusive: true });
    await second.close();
  } finally {
    await first.close();
    await dropSchema(schema);
  }
});

test("postgres: servers starting at once on a new schema migrate it once", async () => {
  const schema = freshSchemaName();
  const url = databaseUrl();
  try {
    // Each opens, migrates and closes; the schema's lock makes them take turns after migrating.
    await Promise.all(Array.from({ length: 4 }, async () => {
      const storage = await createPostgresStorage({ url, schema, lockWaitMs: 30_000, exclusive: true });
      await storage.documents.put("d/x", 1);
      await storage.close();
    }));
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const rows = await sql.unsafe(`select version from "${schema}".migrations`);
    await sql.end();
    assert.deepEqual(rows.map((row) => row.version).sort((a, b) => a - b), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
  } finally {
    await dropSchema(schema);
  }
});

test("postgres: a blob of many chunks streams back whole and in ranges that cross chunk boundaries", async () => {
  const storage = await openTestPostgresStorage();
  try {
    const size = 3 * 1024 * 1024 + 12_345;
    const bytes = new Uint8Array(size).map((_, i) => (i * 7 + (i >> 11)) % 256);
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < size; at += 300_001) controller.enqueue(bytes.slice(at, at + 300_001));
        controller.close();
      },
    });
    const info = await storage.blobs.put("files/big", source, { markEvery: 1024 * 1024 });
    assert.equal(info.bytes, size);
    assert.equal(info.marks!.digests.length, 3);
    const read = async (start?: number, end?: number) => {
      const parts: Uint8Array[] = [];
      for await (const chunk of await storage.blobs.get("files/big", start === undefined ? undefined : { start, end })) parts.push(chunk);
      return new Uint8Array(parts.flatMap((part) => [...part]));
    };
    assert.deepEqual(await read(), bytes);
    for (const [start, end] of [[0, 1], [1024 * 1024 - 5, 1024 * 1024 + 5], [2 * 1024 * 1024, size], [size - 3, size + 10]]) {
      assert.deepEqual(await read(start, end), bytes.subarray(start, Math.min(end, size)), `bytes ${start}-${end}`);
    }
  } finally {
    await storage.close();
  }
});

test("postgres: a put that fails part way leaves no chunk behind, and the old blob stays", async () => {
  const storage = await openTestPostgresStorage();
  try {
    await storage.blobs.put("files/x", new Uint8Array([1, 2, 3]));
    let sent = 0;
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 3) controller.enqueue(new Uint8Array(1024 * 1024).fill(9));
        else controller.error(new Error("the client went away"));
      },
    });
    await assert.rejects(storage.blobs.put("files/x", failing), /the client went away/);
    assert.deepEqual(await storage.blobs.stat("files/x"), { key: "files/x", bytes: 3 });
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    const schema = storage.schema;
    const [{ count }] = await sql.unsafe(`select count(*)::int as count from "${schema}".blob_chunks`);
    const [{ uploads }] = await sql.unsafe(`select count(*)::int as uploads from "${schema}".blob_uploads`);
    await sql.end();
    assert.equal(count, 1, "only the old blob's chunk");
    assert.equal(uploads, 0);
  } finally {
    await storage.close();
  }
});

test("postgres: a document whose row was changed, or moved to another key, is corrupt", async () => {
  const schema = freshSchemaName();
  const storage = await createPostgresStorage({ url: databaseUrl(), schema });
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  try {
    await storage.documents.put("d/a", { amount: 10 });
    await storage.documents.put("d/b", { amount: 20 });
    await sql.unsafe(`update "${schema}".documents set envelope = replace(envelope, '10', '99') where key = 'd/a'`);
    await assert.rejects(storage.documents.get("d/a"), (e) => isStorageError(e, "corrupt"));
    await sql.unsafe(`update "${schema}".documents set envelope = (select envelope from "${schema}".documents where key = 'd/b') where key = 'd/a'`);
    await assert.rejects(storage.documents.get("d/a"), (e) => isStorageError(e, "corrupt") && /d\/b/.test(e.message));
    assert.equal(await storage.documents.put("d/a", { amount: 11 }), 2, "an unconditional write replaces it");
  } finally {
    await storage.close();
    await sql.end();
    await dropSchema(schema);
  }
});
