import assert from "node:assert/strict";
import { test } from "node:test";
import { CustomIdSet } from "../../src/batch/input/custom_id_set.ts";

/** FNV-1a over UTF-8 bytes, 31 bits: the same hash the set uses, to build colliding ids. */
function fnv(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 1;
}

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
    const other = byHash.get(fnv(id));
    if (other !== undefined) pair = [other, id];
    else byHash.set(fnv(id), id);
  }
  const [first, second] = pair;
  assert.notEqual(first, second);
  const ids = new CustomIdSet();
  assert.equal(ids.add(first), true);
  assert.equal(ids.add(second), true, "a different id with the same hash is new");
  assert.equal(ids.add(second), false);
  assert.equal(ids.add(first), false);
  assert.equal(ids.size, 2);
});
