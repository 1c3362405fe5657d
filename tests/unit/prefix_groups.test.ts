import assert from "node:assert/strict";
import { test } from "node:test";
import { prefixKeyOf, reorder } from "../../src/engine/lines/prefix_groups.ts";
import type { LineToRun } from "../../src/engine/lines/line_runner.ts";
import type { RequestLine } from "../../src/batch/input/validation.ts";
import { createBatchEngine } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Target } from "../../src/targets/types.ts";
import { allCustomIds, ended, submit, waitUntil } from "../support/engine.ts";

/** A line of `id` whose system prompt is `prefix` (none: a lone user message). */
function lineOf(id: string, prefix: string | null): string {
  const messages = prefix === null ? [{ role: "user", content: id }] : [{ role: "system", content: prefix }, { role: "user", content: id }];
  return JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages } });
}

const toRun = (texts: string[]): LineToRun[] =>
  texts.map((text, i) => ({ line: i + 1, text, request: JSON.parse(text) as RequestLine }));

test("prefixKeyOf: the messages before the last (and system or instructions) make the key; a lone message has none", () => {
  const [a, b, lone] = toRun([lineOf("1", "sys"), lineOf("2", "sys"), lineOf("3", null)]);
  assert.equal(prefixKeyOf(a), prefixKeyOf(b));
  assert.equal(prefixKeyOf(lone), null);
  const anthropic = toRun([JSON.stringify({ custom_id: "x", method: "POST", url: "/v1/messages", body: { model: "c", system: "s", messages: [{ role: "user", content: "q" }] } })]);
  assert.notEqual(prefixKeyOf(anthropic[0]), null);
});

test("reorder: each group's leader goes ahead and its other lines follow together; every line once; lone lines keep their order", () => {
  const prefixes = ["A", "B", "C", null, "A", "B", "C", "D", null, "A", "B", "C", "D"];
  const lines = toRun(prefixes.map((prefix, i) => lineOf(`l${i}`, prefix)));
  const ordered = reorder(lines, 2);
  assert.deepEqual(ordered.map((l) => l.line).sort((a, b) => a - b), lines.map((l) => l.line), "a permutation");
  const sequence = ordered.map((l) => prefixes[l.line - 1] ?? "-");
  // Lead of 2 lines over groups of ~2.2 lines: one group of lag; A's followers after B's leader, and so on.
  assert.deepEqual(sequence.join(""), "AB" + "AA" + "C" + "BB" + "-" + "CC" + "D" + "-" + "D");
  const lone = ordered.filter((l) => prefixes[l.line - 1] === null).map((l) => l.line);
  assert.deepEqual(lone, [4, 9]);
  assert.deepEqual(reorder(toRun([lineOf("x", null), lineOf("y", null)]), 4).map((l) => l.line), [1, 2], "nothing to group: input order");
});

test("engine: with prefix grouping lines sharing a prefix reach the upstream together; without, in input order; each result once", async () => {
  for (const prefixGrouping of [true, false]) {
    const sent: string[] = [];
    const target: Target = {
      description: "recording",
      send: async (request) => {
        sent.push(JSON.parse(request.bodyText).messages[0].content);
        await new Promise((resolve) => setTimeout(resolve, 0));
        return { status: 200, body: { ok: true }, requestId: null, retryAfterMs: null, json: true };
      },
    };
    const storage = createMemoryStorage();
    const engine = createBatchEngine({ storage, target, logger: silentLogger, concurrency: 1, prefixGrouping });
    await engine.start();
    try {
      const prefixes = Array.from({ length: 60 }, (_, i) => ["P", "Q", "R"][i % 3]);
      const batch = await submit(engine, prefixes.map((prefix, i) => lineOf(`l${i}`, prefix)));
      const done = await waitUntil(engine, batch.id, ended);
      assert.deepEqual(done.request_counts, { total: 60, completed: 60, failed: 0 });
      assert.deepEqual((await allCustomIds(engine, done)).sort(), prefixes.map((_, i) => `l${i}`).sort());
      // Changes of prefix between consecutive requests: 59 in input order, a handful grouped.
      const changes = sent.filter((prefix, i) => i > 0 && prefix !== sent[i - 1]).length;
      if (prefixGrouping) assert.ok(changes <= 5, `grouped: ${changes} changes of prefix (${sent.join("")})`);
      else assert.equal(changes, 59);
    } finally {
      await engine.close();
      await storage.close();
    }
  }
});
