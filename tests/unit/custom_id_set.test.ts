import assert from "node:assert/strict";
import { test } from "node:test";
import { CustomIdSet } from "../../src/batch/input/custom_id_set.ts";
import { sipHash32, sipHashKey } from "../../src/shared/siphash.ts";
import { fnv1a, fnvMulticollisions } from "../support/fnv_multicollisions.ts";

const KEY = sipHashKey(new Uint8Array(16).fill(7));
const hashOf = (text: string) => sipHash32(KEY, new TextEncoder().encode(text));

test("CustomIdSet: answers like a Set for many ids, repeats and Unicode, through every growth", () => {
  const ours = new CustomIdSet();
  const reference = new Set<string>();
  const ids: string[] = [];
  for (let i = 0; i < 30_000; i++) ids.push(i % 7 === 0 ? `ü-${i}-✓` : `req-${i}`);
  ids.push("", "x".repeat(512), "𝄞".repeat(100));
  for (const id of [...ids, ...ids.slice(0, 5_000), "req-1", "ü-7-✓"]) {
    assert.equal(ours.add(id), !reference.has(id), JSON.stringify(id));
    reference.add(id);
  }
  assert.equal(ours.size, reference.size);
});

test("CustomIdSet: ids whose hashes are equal stay distinct; only the same id is a repeat", () => {
  const byHash = new Map<number, string>();
  let pair: [string, string] | null = null;
  for (let i = 0; pair === null; i++) {
    const id = `id-${i}`;
    const other = byHash.get(hashOf(id));
    if (other !== undefined) pair = [other, id];
    else byHash.set(hashOf(id), id);
  }
  const [first, second] = pair;
  assert.notEqual(first, second);
  const ids = new CustomIdSet(KEY);
  assert.equal(ids.add(first), true);
  assert.equal(ids.add(second), true, "a different id with the same hash is new");
  assert.equal(ids.add(second), false);
  assert.equal(ids.add(first), false);
  assert.equal(ids.size, 2);
});

test("CustomIdSet: ids built to share one unkeyed hash cost what random ids cost (no hash flooding)", () => {
  const flood = fnvMulticollisions(12);
  assert.equal(new Set(flood).size, 4096);
  assert.equal(new Set(flood.map((id) => fnv1a(id))).size, 1, "the ids do share one FNV-1a hash");
  const ids = new CustomIdSet();
  for (const id of flood) assert.equal(ids.add(id), true);
  // Unkeyed, every add would look at all the ids before it: about 2,000 slots an add here.
  const perAdd = ids.probes / flood.length;
  assert.ok(perAdd < 4, `${perAdd.toFixed(1)} slots looked at per add`);
});
