/**
 * The PostgreSQL ledger's tables as two nodes use them at once: a claim's fencing token
 * refuses the writes of a node whose item was claimed by another, and the
 * last slice of a batch makes its finalize item exactly once, even when the
 * last two slices finish on two nodes at the same moment.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import postgres from "postgres";
import { FINALIZE_ITEM, type SliceSpec } from "../../src/engine/ledger/ledger.ts";
import { ClusterStore } from "../../src/engine/ledger/postgres/cluster_store.ts";
import { channelOf } from "../../src/engine/ledger/postgres/postgres_ledger.ts";
import { resultFileStore } from "../../src/engine/ledger/postgres/result_files.ts";
import { MIGRATIONS } from "../../src/storage/postgres/migrations.ts";
import { createPostgresStorage } from "../../src/storage/postgres/postgres_storage.ts";
import { databaseUrl, dropSchema, freshSchemaName } from "../support/postgres.ts";
import { eventually } from "../support/server.ts";

async function withTwoNodes(
  body: (a: ClusterStore, b: ClusterStore, sql: postgres.Sql) => Promise<void>,
  schema = freshSchemaName(),
): Promise<void> {
  // Opening the storage creates and migrates the schema.
  await (await createPostgresStorage({ url: databaseUrl(), schema })).close();
  const sql = postgres(databaseUrl(), { max: 4, onnotice: () => {}, connection: { search_path: `"${schema}"` } });
  try {
    const a = new ClusterStore(sql, "node-a", 60, channelOf(schema));
    const b = new ClusterStore(sql, "node-b", 60, channelOf(schema));
    const me = { pid: 1, host: "test" };
    await a.registerNode(me);
    await b.registerNode(me);
    await body(a, b, sql);
  } finally {
    await sql.end();
    await dropSchema(schema);
  }
}

const slices = (n: number): SliceSpec[] =>
  Array.from({ length: n }, (_, i) => ({ firstLine: i * 10 + 1, lineCount: 10, byteStart: i * 100, byteEnd: (i + 1) * 100, sha256: "x" }));

const usage = { completed: 1, failed: 0, usage: {} };

test("postgres ledger: a node whose slice was claimed by another records nothing, and the new holder's results count", () =>
  withTwoNodes(async (a, b, sql) => {
    await a.addBatch("batch_1", "default", "file-1", 2_000_000_000);
    const validation = await a.claim(["validate"]);
    assert.ok(validation);
    assert.equal(await b.claim(["validate"]), null, "a held item is not claimed twice");
    assert.equal(await a.addSlices(validation, slices(1), true), true);

    const first = (await a.claim(["slice"]))!;
    assert.equal(first.item, 0);
    // Node A stalls; its lease is given up for it (as it lapses, or its node is proven gone).
    await b.forgetNode("node-a");
    const second = (await b.claim(["slice"]))!;
    assert.equal(second.item, 0);
    assert.equal(second.token, first.token + 1);

    const line = (n: number) => ({ line: n, isError: false, record: `{"line":${n}}` });
    assert.equal(await a.recordResults(first, [line(1), line(2)], usage), false, "the stalled node's write is refused");
    assert.deepEqual(await b.finishedLines("batch_1", 1, 10), [], "and it left nothing");
    assert.equal(await b.recordResults(second, [line(1)], usage), true);
    assert.deepEqual(await a.finishedLines("batch_1", 1, 10), [1]);
    assert.equal(await a.finishSlice(first), false, "the stalled node cannot finish the slice either");
    assert.equal(await a.heartbeat([first]).then((kept) => kept.length), 0, "and its heartbeat learns it lost it");
    assert.equal(await b.finishSlice(second), true);
    const [finalize] = await sql`select kind from cluster_work where batch_id = 'batch_1' and item = ${FINALIZE_ITEM}`;
    assert.equal(finalize.kind, "finalize");
  }));

test("postgres ledger: the last slices finishing at once on two nodes make one finalize item", () =>
  withTwoNodes(async (a, b, sql) => {
    for (let round = 0; round < 10; round++) {
      const batchId = `batch_r${round}`;
      await a.addBatch(batchId, "default", "file-1", 2_000_000_000);
      const validation = (await a.claim(["validate"]))!;
      assert.equal(await a.addSlices(validation, slices(2), true), true);
      const one = (await a.claim(["slice"]))!;
      const two = (await b.claim(["slice"]))!;
      assert.notEqual(one.item, two.item);
      assert.deepEqual(await Promise.all([a.finishSlice(one), b.finishSlice(two)]), [true, true]);
      const rows = await sql`select count(*)::int as n from cluster_work where batch_id = ${batchId} and kind = 'finalize'`;
      assert.equal(rows[0].n, 1);
    }
  }));

test("postgres ledger: a slice's results written in any order, a group a write, make files in line order; a changed byte is refused", () =>
  withTwoNodes(async (a, _b, sql) => {
    await a.addBatch("batch_g", "default", "file-1", 2_000_000_000);
    const validation = (await a.claim(["validate"]))!;
    assert.equal(await a.addSlices(validation, slices(2), true), true);
    const held = (await a.claim(["slice"]))!;
    const record = (n: number) => JSON.stringify({ line: n, text: "ü".repeat(n) });
    const row = (n: number, isError = false) => ({ line: n, isError, record: record(n) });
    // Three writes, each with lines from all over the slice, outputs and errors mixed.
    assert.equal(await a.recordResults(held, [row(7), row(2), row(9, true), row(4)], usage), true);
    assert.equal(await a.recordResults(held, [row(1), row(10), row(3, true)], usage), true);
    assert.equal(await a.recordResults(held, [row(8), row(5), row(6, true)], usage), true);
    assert.deepEqual((await a.finishedLines("batch_g", 1, 10)).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual((await a.finishedLines("batch_g", 4, 3)).sort((x, y) => x - y), [4, 5, 6]);
    const sizes = await a.resultSizes("batch_g");
    const files = resultFileStore(a, sql);
    const text = async (kind: "output" | "errors", bytes: number) =>
      await new Response(await files.read({ store: "results", key: `batches/batch_g/${kind}` }, bytes)).text();
    assert.equal(await text("output", sizes.output.bytes), [1, 2, 4, 5, 7, 8, 10].map((n) => record(n) + "\n").join(""));
    assert.equal(await text("errors", sizes.errors.bytes), [3, 6, 9].map((n) => record(n) + "\n").join(""));
    assert.equal(sizes.output.rows, 7);
    await assert.rejects(text("output", sizes.output.bytes + 1), /holds \d+ bytes/);
    await sql`update cluster_result_groups set records = replace(records, '"line":5', '"line":6') where batch_id = 'batch_g'`;
    await assert.rejects(text("output", sizes.output.bytes), /differs from what was recorded/);
  }));

test("postgres ledger: results a node recorded a row a line (schema version 2) are still served after the upgrade", async () => {
  const schema = freshSchemaName();
  const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {}, connection: { search_path: `"${schema}"` } });
  try {
    await sql.unsafe(`create schema "${schema}"`);
    await sql.unsafe(`create table migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())`);
    for (const migration of MIGRATIONS.filter((m) => m.version <= 2)) {
      for (const statement of migration.statements) await sql.unsafe(statement);
      await sql`insert into migrations (version, name) values (${migration.version}, ${migration.name})`;
    }
    await sql`insert into cluster_results (batch_id, line, is_error, record)
      values ('batch_old', 2, false, '{"n":2}'), ('batch_old', 1, false, '{"n":1}'), ('batch_old', 3, true, '{"n":3}')`;
    await (await createPostgresStorage({ url: databaseUrl(), schema })).close();
    const reads = new ClusterStore(sql, "node-a", 60, channelOf(schema));
    assert.deepEqual((await reads.finishedLines("batch_old", 1, 5)).sort(), [1, 2, 3]);
    const sizes = await reads.resultSizes("batch_old");
    assert.deepEqual(sizes.output, { rows: 2, bytes: 16 });
    const output = await resultFileStore(reads, sql).read({ store: "results", key: "batches/batch_old/output" }, sizes.output.bytes);
    assert.equal(await new Response(output).text(), '{"n":1}\n{"n":2}\n');
  } finally {
    await sql.end();
    await dropSchema(schema);
  }
});

test("postgres ledger: slices added while the cut goes on run at once; the last add counts those already done", () =>
  withTwoNodes(async (a, b, sql) => {
    await a.addBatch("batch_c", "default", "file-1", 2_000_000_000);
    const validation = (await a.claim(["validate"]))!;
    const [one, two, three] = slices(3);
    assert.equal(await a.addSlices(validation, [one], false), true);
    assert.deepEqual(await b.slicedSoFar("batch_c"), { lines: 10, bytes: 100 });
    // Another node runs the first slice while the validation goes on; finishing it makes no finalize item.
    const first = (await b.claim(["slice"]))!;
    assert.equal(first.item, 0);
    assert.equal(await b.finishSlice(first), true);
    const finalize = () => sql`select 1 from cluster_work where batch_id = 'batch_c' and kind = 'finalize'`;
    assert.equal((await finalize()).length, 0);
    // The validating node's claim lapses; the node that claims it next resumes after the slices added.
    await b.forgetNode("node-a");
    const resumed = (await b.claim(["validate"]))!;
    assert.equal(await a.addSlices(validation, [two], false), false, "the lapsed claim adds nothing");
    assert.equal(await b.addSlices(resumed, [two], false), true);
    assert.deepEqual(await a.slicedSoFar("batch_c"), { lines: 20, bytes: 200 });
    const second = (await a.claim(["slice"]))!;
    assert.equal(second.item, 1);
    assert.equal(await b.addSlices(resumed, [three], true), true);
    const [{ slices_left }] = await sql`select slices_left from cluster_batches where batch_id = 'batch_c'`;
    assert.equal(slices_left, 2, "the slice done before the last add is not left");
    const third = (await b.claim(["slice"]))!;
    assert.equal(third.item, 2);
    assert.deepEqual(await Promise.all([a.finishSlice(second), b.finishSlice(third)]), [true, true]);
    assert.equal((await finalize()).length, 1);
  }));

test("postgres ledger: a last add when every slice added before is done goes straight to finalizing", () =>
  withTwoNodes(async (a, _b, sql) => {
    await a.addBatch("batch_d", "default", "file-1", 2_000_000_000);
    const validation = (await a.claim(["validate"]))!;
    assert.equal(await a.addSlices(validation, slices(1), false), true);
    assert.equal(await a.finishSlice((await a.claim(["slice"]))!), true);
    assert.equal(await a.addSlices(validation, [], true), true);
    const rows = await sql`select kind from cluster_work where batch_id = 'batch_d' and kind = 'finalize'`;
    assert.equal(rows.length, 1);
  }));

test("postgres ledger: a node the others dropped (silent for 20 leases) joins again at its next heartbeat", () =>
  withTwoNodes(async (a, b) => {
    let rejoined = 0;
    b.onRejoin = () => rejoined++;
    await a.forgetNode("node-b");
    assert.deepEqual((await a.nodes()).map((n) => n.nodeId), ["node-a"]);
    await b.heartbeat([]);
    assert.deepEqual((await a.nodes()).map((n) => n.nodeId), ["node-a", "node-b"], "visible in /cluster and in the budgets' shares");
    assert.equal(rejoined, 1);
    await b.heartbeat([]);
    assert.equal(rejoined, 1, "a node in the table just beats");
  }));

test("postgres ledger: a schema name of 63 characters (PostgreSQL's most) still notifies the nodes", async () => {
  const schema = (freshSchemaName() + "_".repeat(63)).slice(0, 63);
  const twin = schema.slice(0, 62) + "x";
  assert.ok(channelOf(schema).length <= 63);
  assert.notEqual(channelOf(schema), channelOf(twin), "long names that share a prefix get their own channels");
  await withTwoNodes(async (a, b) => {
    const heard: string[] = [];
    const listener = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      await listener.listen(channelOf(schema), (payload) => heard.push(payload));
      await a.addBatch("batch_long", "default", "file-1", 2_000_000_000);
      const validation = (await a.claim(["validate"]))!;
      assert.equal(await a.addSlices(validation, slices(1), true), true, "the slices' transaction notifies");
      assert.equal(await b.finishSlice((await b.claim(["slice"]))!), true);
      await eventually(async () => heard.includes("work"));
    } finally {
      await listener.end();
    }
  }, schema);
});
