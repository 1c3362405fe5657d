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

/** A source that sends `first` bytes, then waits until `finish` is called, then sends `rest` bytes and ends. */
function pausingSource(first: number, rest: number) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let step = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (step === 0) controller.enqueue(new Uint8Array(first).fill(1));
      else if (step === 1) {
        await released;
        controller.enqueue(new Uint8Array(rest).fill(2));
      } else controller.close();
      step++;
    },
  }, { highWaterMark: 0 });
  return { stream, finish: release };
}

/** Waits until `check` holds, asking the database again and again (no deadline: the test runner's is the limit). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 10));
}

test("postgres: a live upload marks itself alive however slowly it sends and is never removed; an abandoned one is", async () => {
  const storage = await openTestPostgresStorage({ uploadHeartbeatMs: 20 });
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const schema = sql(storage.schema);
  try {
    // A writer that died long ago: its upload row and a chunk, untouched for an hour.
    const dead = crypto.randomUUID();
    await sql`insert into ${schema}.blob_uploads (upload_id, key, updated_at) values (${dead}, 'files/dead', now() - interval '1 hour')`;
    await sql`insert into ${schema}.blob_chunks (upload_id, seq, data) values (${dead}, 0, ${new Uint8Array(10)})`;
    // A live writer whose client sends 300 KB, then nothing for as long as the test likes.
    const source = pausingSource(300_000, 5_000);
    const put = storage.blobs.put("files/slow", source.stream);
    const [{ upload_id: live }] = await (async () => {
      await until(async () => (await sql`select 1 from ${schema}.blob_chunks c join ${schema}.blob_uploads u using (upload_id)
        where u.key = 'files/slow'`).length > 0);
      return await sql`select upload_id from ${schema}.blob_uploads where key = 'files/slow'`;
    })();
    // As if the client had been silent for an hour: only the writer's own marks can show it is alive.
    await sql`update ${schema}.blob_uploads set updated_at = now() - interval '1 hour' where upload_id = ${live}`;
    await until(async () => (await sql`select 1 from ${schema}.blob_uploads
      where upload_id = ${live} and updated_at > now() - interval '1 minute'`).length > 0);
    assert.equal(await storage.removeLeftovers!(), 1, "the dead writer's upload, not the live one");
    const left = await sql`select upload_id::text as id, count(*)::int as chunks from ${schema}.blob_chunks group by upload_id`;
    assert.deepEqual(left.map((row) => row.id), [live], "the dead upload's chunks went with it");
    source.finish();
    assert.equal((await put).bytes, 305_000);
    const parts: Uint8Array[] = [];
    for await (const chunk of await storage.blobs.get("files/slow")) parts.push(chunk);
    const bytes = new Uint8Array(parts.flatMap((part) => [...part]));
    assert.equal(bytes.length, 305_000);
    assert.ok(bytes.subarray(0, 300_000).every((b) => b === 1) && bytes.subarray(300_000).every((b) => b === 2));
  } finally {
    await sql.end();
    await storage.close();
  }
});

test("postgres: a writer paused past the abandoned limit finds its upload removed: its put fails, the old blob stays", async () => {
  // No mark during the test: the writer is as good as paused.
  const storage = await openTestPostgresStorage({ uploadHeartbeatMs: 3_600_000 });
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const schema = sql(storage.schema);
  try {
    await storage.blobs.put("files/x", new Uint8Array([1, 2, 3]));
    const source = pausingSource(300_000, 300_000);
    const put = storage.blobs.put("files/x", source.stream);
    put.catch(() => {});
    await until(async () => (await sql`select 1 from ${schema}.blob_uploads where key = 'files/x'`).length > 0 &&
      (await sql`select count(*)::int as n from ${schema}.blob_chunks`)[0].n > 1);
    await sql`update ${schema}.blob_uploads set updated_at = now() - interval '11 minutes'`;
    assert.equal(await storage.removeLeftovers!(), 1);
    source.finish();
    await assert.rejects(put, (error) => isStorageError(error, "io") && /removed as abandoned/.test(error.message));
    assert.deepEqual(await storage.blobs.stat("files/x"), { key: "files/x", bytes: 3 });
    const [{ chunks }] = await sql`select count(*)::int as chunks from ${schema}.blob_chunks`;
    assert.equal(chunks, 1, "only the old blob's chunk: what the woken writer wrote after the removal is gone");
  } finally {
    await sql.end();
    await storage.close();
  }
});

test("postgres: a blob that lost a chunk reads as corrupt, naming the bytes; one deleted while read, as changed", async () => {
  const storage = await openTestPostgresStorage();
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
  const schema = sql(storage.schema);
  const read = async (key: string) => {
    for await (const _ of await storage.blobs.get(key)) { /* drain */ }
  };
  try {
    await storage.blobs.put("files/holey", new Uint8Array(30_000).fill(7));
    await sql`delete from ${schema}.blob_chunks where seq = 1 and upload_id = (select upload_id from ${schema}.blobs where key = 'files/holey')`;
    await assert.rejects(read("files/holey"), (error) =>
      isStorageError(error, "corrupt") && error.key === "files/holey" && /bytes 8000–15999/.test(error.message));
    await storage.blobs.put("files/big", new Uint8Array(3 * 1024 * 1024).fill(5));
    const reader = (await storage.blobs.get("files/big"))[Symbol.asyncIterator]();
    assert.ok(!(await reader.next()).done);
    await storage.blobs.delete("files/big");
    await assert.rejects(async () => {
      while (!(await reader.next()).done) { /* drain */ }
    }, (error) => isStorageError(error, "io") && /changed while it was read/.test(error.message));
  } finally {
    await sql.end();
    await storage.close();
  }
});
