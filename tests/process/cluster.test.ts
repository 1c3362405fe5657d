/**
 * Several `batchspool serve --database` processes on one schema: one batch's
 * lines spread over every node, a killed or stopped node's slices taken over
 * (SIGKILL, SIGSTOP past the lease, SIGTERM handing them back), cancel
 * reaching every node, and, through all of it, every custom_id exactly once.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import postgres from "postgres";
import { currentRuntime } from "../../src/runtime/detect.ts";
import { line } from "../support/engine.ts";
import { databaseUrl, dropSchema, freshSchemaName } from "../support/postgres.ts";
import { eventually, type ServerProcess, startServer } from "../support/server.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";

/** A node of a test cluster, restartable. */
interface Node {
  server: ServerProcess;
  client: OpenAI;
  /** `http://127.0.0.1:<port>` */
  origin: string;
}

interface ClusterView {
  nodes: { node_id: string; work: { batch_id: string; kind: string; item: number }[] }[];
}

/** A cluster of `size` nodes on a fresh schema, with `flags` for each; stopped and dropped afterwards. */
async function withCluster(
  size: number,
  flags: string[],
  body: (cluster: { nodes: Node[]; start(): Promise<Node>; upstream: Upstream; schema: string }) => Promise<void>,
): Promise<void> {
  const schema = freshSchemaName();
  const upstream = await startUpstream();
  const args = ["--database", databaseUrl(), "--database-schema", schema, "--upstream", upstream.baseUrl, ...flags];
  const nodes: Node[] = [];
  const start = async () => {
    const server = await startServer(args);
    await server.waitFor(/ready/);
    const node = { server, client: new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 }), origin: server.baseURL.slice(0, -3) };
    nodes.push(node);
    return node;
  };
  try {
    // One first: it creates the schema; the others join it.
    await start();
    await Promise.all(Array.from({ length: size - 1 }, start));
    await body({ nodes, start, upstream, schema });
  } finally {
    for (const node of nodes) {
      try {
        process.kill(node.server.child.pid!, "SIGCONT");
      } catch { /* already gone */ }
      node.server.child.kill("SIGKILL");
      await node.server.exited;
    }
    await upstream.close();
    await dropSchema(schema);
  }
}

/** Uploads `lines` requests (model `model`) and creates a batch of them through `node`. */
async function submit(node: Node, prefix: string, lines: number, model: string) {
  const ids = Array.from({ length: lines }, (_, i) => `${prefix}-${i}`);
  const content = new TextEncoder().encode(ids.map((id) => line(id, model)).join("\n"));
  const file = await node.client.files.create({ file: await toFile(content, `${prefix}.jsonl`), purpose: "batch" });
  const batch = await node.client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
  return { batch, ids };
}

/** Waits for the batch to end as `status` (asking any live node), then checks every custom_id is in its files exactly once. */
async function expectExactlyOnce(node: () => Node, batchId: string, ids: string[], status = "completed", timeoutMs = 120_000) {
  const done = await eventually(async () => {
    const b = await node().client.batches.retrieve(batchId).catch(() => null);
    return b && ["completed", "failed", "cancelled", "expired"].includes(b.status) && b;
  }, timeoutMs, 100);
  assert.equal(done.status, status, JSON.stringify(done.errors));
  const read = async (id: string | null | undefined) =>
    id ? (await (await node().client.files.content(id)).text()).split("\n").filter(Boolean) : [];
  const output = await read(done.output_file_id);
  const errors = await read(done.error_file_id);
  const seen = [...output, ...errors].map((text) => JSON.parse(text).custom_id as string);
  assert.equal(new Set(seen).size, seen.length, "no custom_id twice");
  if (status !== "cancelled") assert.deepEqual([...seen].sort(), [...ids].sort(), "every custom_id once");
  assert.deepEqual(done.request_counts, { total: ids.length, completed: output.length, failed: errors.length });
  return { done, seen, output, errors };
}

async function clusterView(node: Node): Promise<ClusterView> {
  const response = await fetch(`${node.origin}/cluster`);
  assert.equal(response.status, 200);
  return await response.json() as ClusterView;
}

async function linesFinishedBy(node: Node): Promise<number> {
  const text = await (await fetch(`${node.origin}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^batchspool_lines_finished_total\{[^}]*\} (\d+)/gm)) total += Number(match[1]);
  return total;
}

test("cluster: three nodes on one database spread one batch's lines over all three, each line once", () =>
  withCluster(3, ["--concurrency", "4", "--slice-lines", "20"], async ({ nodes }) => {
    const health = await (await fetch(`${nodes[1].origin}/health`)).json();
    assert.equal(health.status, "ok");
    assert.equal(typeof health.node_id, "string");
    const { batch, ids } = await submit(nodes[0], "spread", 600, "slow:15");
    await expectExactlyOnce(() => nodes[2], batch.id, ids);
    const perNode = await Promise.all(nodes.map(linesFinishedBy));
    assert.equal(perNode.reduce((a, b) => a + b, 0), 600, `lines finished per node: ${perNode}`);
    for (const finished of perNode) assert.ok(finished > 0, `every node ran some lines: ${perNode}`);
    const view = await clusterView(nodes[0]);
    assert.equal(view.nodes.length, 3);
  }));

test("cluster: cancel on one node stops the batch on all nodes", () =>
  withCluster(3, ["--concurrency", "2", "--slice-lines", "10"], async ({ nodes, upstream }) => {
    const { batch, ids } = await submit(nodes[0], "cancel", 400, "slow:100");
    // Every node is running slices of it.
    await eventually(async () => {
      const view = await clusterView(nodes[1]);
      return view.nodes.every((n) => n.work.some((w) => w.batch_id === batch.id && w.kind === "slice"));
    }, 60_000);
    const cancelling = await nodes[1].client.batches.cancel(batch.id);
    const cancelledAt = Date.now();
    assert.equal(cancelling.status, "cancelling");
    const { seen } = await expectExactlyOnce(() => nodes[2], batch.id, ids, "cancelled");
    assert.ok(seen.length < ids.length, "lines were left unsent");
    // No node sent a line once the cancel reached it (a notification: well under a second, give or take a busy machine).
    const late = upstream.requests.filter((r) => r.at > cancelledAt + 1_500);
    assert.deepEqual(late.map((r) => r.prompt), []);
  }));

test("cluster: a batch whose window ends is expired on every node: its undone lines go to the error file once", () =>
  withCluster(3, ["--concurrency", "2", "--slice-lines", "10"], async ({ nodes, upstream }) => {
    const ids = Array.from({ length: 300 }, (_, i) => `expire-${i}`);
    const content = new TextEncoder().encode(ids.map((id) => line(id, "slow:200")).join("\n"));
    const file = await nodes[0].client.files.create({ file: await toFile(content, "expire.jsonl"), purpose: "batch" });
    // Six requests in flight at a time, of 200 ms each: 300 lines need ten seconds, the window is three.
    const batch = await nodes[0].client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "3s" as "24h",
    });
    const { done, errors } = await expectExactlyOnce(() => nodes[1], batch.id, ids, "expired");
    const expired = errors.map((text) => JSON.parse(text)).filter((r) => r.error?.code === "batch_expired");
    assert.ok(expired.length > 0 && expired.length === errors.length, `${expired.length} of ${errors.length} errors expired`);
    assert.equal(done.request_counts!.completed + done.request_counts!.failed, ids.length, "every line has a result");
    // No node sent a line once the expiry reached it.
    const late = upstream.requests.filter((r) => r.at > done.expires_at! * 1000 + 1_500);
    assert.deepEqual(late.map((r) => r.prompt), []);
  }));

/** The slices a node holds now, by `batch/item`. */
async function heldBy(observer: Node, nodeId: string): Promise<string[]> {
  const view = await clusterView(observer);
  const work = view.nodes.find((n) => n.node_id === nodeId)?.work ?? [];
  return work.filter((w) => w.kind === "slice").map((w) => `${w.batch_id}/${w.item}`);
}

/** Milliseconds until every one of `items` is held by another node than `nodeId`, or done. */
async function takeoverMs(observer: Node, nodeId: string, items: string[], since: number): Promise<number> {
  await eventually(async () => {
    const view = await clusterView(observer);
    const stillThere = view.nodes.find((n) => n.node_id === nodeId)?.work.map((w) => `${w.batch_id}/${w.item}`) ?? [];
    const heldElsewhere = new Set(
      view.nodes.filter((n) => n.node_id !== nodeId).flatMap((n) => n.work.map((w) => `${w.batch_id}/${w.item}`)),
    );
    return items.every((item) => !stillThere.includes(item) || heldElsewhere.has(item));
  }, 60_000, 50);
  return Date.now() - since;
}

const nodeIdOf = async (node: Node) => (await (await fetch(`${node.origin}/health`)).json()).node_id as string;

/** Waits until `node` holds slices, as `observer` sees them; returns its id and those slices. */
async function slicesOf(observer: Node, node: Node): Promise<{ nodeId: string; items: string[] }> {
  const nodeId = await nodeIdOf(node);
  const items = await eventually(async () => {
    const held = await heldBy(observer, nodeId);
    return held.length > 0 && held;
  }, 60_000);
  return { nodeId, items };
}

test("cluster: a killed node's slices are claimed by others at once, not after its lease", () =>
  // A minute's lease: only the proof that the process is gone (same boot and pid namespace, its pid
  // gone) can free its slices within half of it. How soon after the kill is benchmark 10's figure.
  withCluster(3, ["--concurrency", "2", "--slice-lines", "10", "--lease-seconds", "60"], async ({ nodes }) => {
    const { batch, ids } = await submit(nodes[0], "takeover", 300, "slow:50");
    const victim = nodes[2];
    const { nodeId: victimId, items } = await slicesOf(nodes[0], victim);
    const killedAt = Date.now();
    await victim.server.kill();
    const ms = await takeoverMs(nodes[0], victimId, items, killedAt);
    assert.ok(ms < 30_000, `taken over after ${ms} ms, not after the 60 s lease`);
    await expectExactlyOnce(() => nodes[0], batch.id, ids);
  }));

test("cluster: a node stopped past its lease loses its slices, and nothing it sends after it wakes is recorded", () =>
  withCluster(3, ["--concurrency", "8", "--slice-lines", "10", "--lease-seconds", "2"], async ({ nodes }) => {
    // Each request takes a second: the slices it holds when it is stopped still have requests in flight.
    const { batch, ids } = await submit(nodes[0], "stalled", 150, "slow:1000");
    const sleeper = nodes[1];
    const { nodeId: sleeperId, items } = await slicesOf(nodes[0], sleeper);
    // Stopped with requests in flight: their answers arrive while it sleeps, and it reads them when it wakes.
    const stoppedAt = Date.now();
    process.kill(sleeper.server.child.pid!, "SIGSTOP");
    const ms = await takeoverMs(nodes[0], sleeperId, items, stoppedAt);
    // Not before its lease could lapse (its last heartbeat was at most a third of the lease before the stop).
    assert.ok(ms >= 1_000, `taken over after ${ms} ms, while its lease still ran`);
    process.kill(sleeper.server.child.pid!, "SIGCONT");
    await expectExactlyOnce(() => nodes[0], batch.id, ids);
    // It learned it lost them: from its heartbeat, or from a write the fence refused.
    await sleeper.server.waitFor(/by another node/);
  }));

test("cluster: nodes keep their slices while reads storm and stall: streams past each key's cap, list loops, documents locked", () => {
  const keys = ["sk-storm-1", "sk-storm-2", "sk-storm-3"];
  const leaseSeconds = 3;
  const flags = ["--concurrency", "2", "--slice-lines", "10", "--lease-seconds", String(leaseSeconds), "--max-event-streams", "4"];
  return withCluster(2, [...flags, ...keys.flatMap((key) => ["--api-key", key])], async ({ nodes, schema }) => {
    const clientOf = (node: Node, key: string) => new OpenAI({ baseURL: node.server.baseURL, apiKey: key, maxRetries: 0 });
    const batches = await Promise.all(keys.map(async (key, k) => {
      const client = clientOf(nodes[k % 2], key);
      const ids = Array.from({ length: 100 }, (_, i) => `storm${k}-${i}`);
      const file = await client.files.create({ file: await toFile(new TextEncoder().encode(ids.map((id) => line(id, "slow:50")).join("\n")), "s.jsonl"), purpose: "batch" });
      const batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      return { key, batch, ids, client };
    }));
    for (const node of nodes) await slicesOf(nodes[0], node);
    const storm = new AbortController();
    const statuses: number[] = [];
    // Every key opens its cap of event streams on each node, and two more that must be refused.
    const streams: Promise<void>[] = [];
    for (const { key, batch } of batches) {
      for (const node of nodes) {
        for (let i = 0; i < 6; i++) {
          streams.push(fetch(`${node.origin}/v1/batches/${batch.id}/events`, { headers: { authorization: `Bearer ${key}` }, signal: storm.signal })
            .then(async (response) => {
              statuses.push(response.status);
              // An open stream is read until the storm ends (or its batch does); a refused one is done.
              if (response.status === 200) for await (const _ of response.body!) { /* events */ }
              else await response.body?.cancel();
            }).catch(() => {}));
        }
      }
    }
    // And list and get loops on both nodes, as fast as they are answered.
    const loops = Array.from({ length: 16 }, async (_, i) => {
      const { key, batch } = batches[i % batches.length];
      const node = nodes[i % 2];
      try {
        while (!storm.signal.aborted) {
          const path = i % 4 === 0 ? `/v1/batches/${batch.id}` : "/v1/batches?limit=100";
          const response = await fetch(`${node.origin}${path}`, { headers: { authorization: `Bearer ${key}` }, signal: storm.signal });
          statuses.push(response.status);
          await response.body?.cancel();
        }
      } catch (error) {
        if (!storm.signal.aborted) throw error;
      }
    });
    // Then reads of batch and file records stall outright: their table is locked for three leases, by the database's clock.
    const admin = postgres(databaseUrl(), { max: 2, onnotice: () => {} });
    /** Slices held by a node, and slices claimed more than once (a node lost one), as often as they were looked at. */
    const seen = { held: 0, reclaimed: [] as string[] };
    const look = async () => {
      const rows = await admin`select batch_id, item, token, node_id is not null and not done as held
        from ${admin(schema)}.cluster_work where kind = 'slice'`;
      seen.held = Math.max(seen.held, rows.filter((row) => row.held).length);
      for (const row of rows) if (row.token > 1) seen.reclaimed.push(`${row.batch_id}/${row.item}`);
    };
    try {
      await admin.begin(async (tx) => {
        await tx`lock table ${tx(schema)}.documents in access exclusive mode`;
        const [{ locked }] = await tx`select extract(epoch from clock_timestamp())::float8 as locked`;
        for (;;) {
          await look();
          const [{ now }] = await tx`select extract(epoch from clock_timestamp())::float8 as now`;
          if (now - locked >= 3 * leaseSeconds) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      });
      await look();
      assert.ok(seen.held >= 2, `the nodes held slices while reads stalled (${seen.held} at most)`);
      assert.deepEqual(seen.reclaimed, [], "no slice was claimed twice: no node lost one");
      for (const { batch, ids, client } of batches) {
        await expectExactlyOnce(() => ({ ...nodes[0], client }), batch.id, ids);
      }
    } finally {
      storm.abort();
      await Promise.all([...streams, ...loops]);
      await admin.end();
    }
    for (const node of nodes) assert.doesNotMatch(node.server.output(), /by another node/);
    const counts = (status: number) => statuses.filter((s) => s === status).length;
    assert.equal(counts(429), keys.length * nodes.length * 2, "each key's streams past its cap on each node were refused");
    assert.equal(statuses.length, counts(200) + counts(429), `only 200 and 429: ${[...new Set(statuses)]}`);
  });
});

test("cluster: SIGTERM hands a node's slices back at once (no lease timeout)", () =>
  withCluster(2, ["--concurrency", "2", "--slice-lines", "10", "--lease-seconds", "60"], async ({ nodes }) => {
    const { batch, ids } = await submit(nodes[0], "handback", 200, "slow:50");
    const leaving = nodes[1];
    const { nodeId: leavingId, items } = await slicesOf(nodes[0], leaving);
    const stoppedAt = Date.now();
    const code = await leaving.server.stop();
    assert.match(leaving.server.output(), /SIGTERM: shutting down\n(.*\n)*stopped\n$/, "a graceful shutdown");
    // Deno's child_process reports a child it signalled as (null, SIGTERM) even when it exited 0.
    if (currentRuntime() !== "deno") assert.equal(code, 0);
    const ms = await takeoverMs(nodes[0], leavingId, items, stoppedAt);
    assert.ok(ms < 30_000, `taken over after ${ms} ms, not after the 60 s lease`);
    await expectExactlyOnce(() => nodes[0], batch.id, ids);
  }));

test("cluster: chaos: nodes SIGKILLed and restarted, and stopped past their lease, while batches run: every line exactly once", () =>
  withCluster(3, ["--concurrency", "4", "--slice-lines", "15", "--lease-seconds", "2"], async ({ nodes, start }) => {
    const batches = await Promise.all(["a", "b", "c"].map((prefix) => submit(nodes[0], `chaos-${prefix}`, 300, "slow:30")));
    const live = () => nodes.filter((n) => n.server.child.exitCode === null && n.server.child.signalCode === null);
    const events: string[] = [];
    for (let round = 0; round < 6; round++) {
      await new Promise((resolve) => setTimeout(resolve, 300 + Math.floor(Math.random() * 500)));
      const running = live();
      const victim = running[Math.floor(Math.random() * running.length)];
      if (round % 3 === 2) {
        events.push(`SIGSTOP ${victim.origin}`);
        process.kill(victim.server.child.pid!, "SIGSTOP");
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        process.kill(victim.server.child.pid!, "SIGCONT");
      } else {
        events.push(`SIGKILL ${victim.origin}`);
        await victim.server.kill();
        nodes.splice(nodes.indexOf(victim), 1);
        await start();
      }
    }
    for (const { batch, ids } of batches) {
      await expectExactlyOnce(() => live()[0], batch.id, ids).catch((error) => {
        throw new Error(`${batch.id} after ${events.join(", ")}: ${(error as Error).message}`);
      });
    }
  }));
