import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bytesFinder,
  firstByteFinder,
  horspoolFinder,
  indexOfByte,
  lastIndexOfByte,
} from "../../src/runtime/find_byte.ts";

/** The obvious search, for comparison. */
function naive(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = Math.max(0, from); i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number) {
  let state = seed;
  return (below: number) => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state % below;
  };
}

test("indexOfByte() finds a byte from an index on", () => {
  const bytes = new Uint8Array([13, 1, 13, 2]);
  assert.equal(indexOfByte(bytes, 13, 0), 0);
  assert.equal(indexOfByte(bytes, 13, 1), 2);
  assert.equal(indexOfByte(bytes, 13, 3), -1);
});

test("lastIndexOfByte() finds the last byte at or before an index, and nothing before the start", () => {
  const bytes = new Uint8Array([10, 1, 10, 2]);
  assert.equal(lastIndexOfByte(bytes, 10), 2);
  assert.equal(lastIndexOfByte(bytes, 10, 1), 0);
  assert.equal(lastIndexOfByte(bytes, 10, 2), 2);
  assert.equal(lastIndexOfByte(bytes, 10, 99), 2);
  assert.equal(lastIndexOfByte(bytes, 10, -1), -1);
  assert.equal(lastIndexOfByte(bytes, 2, 2), -1);
  assert.equal(lastIndexOfByte(new Uint8Array(0), 10), -1);
  // A view into a larger buffer answers in its own indexes.
  const view = new Uint8Array([10, 10, 7, 7, 10, 7]).subarray(2, 5);
  assert.equal(lastIndexOfByte(view, 10), 2);
  assert.equal(lastIndexOfByte(view, 10, 1), -1);
});

for (
  const [name, finder] of [["firstByteFinder", firstByteFinder], ["horspoolFinder", horspoolFinder], [
    "bytesFinder",
    bytesFinder,
  ]] as const
) {
  test(`${name}() agrees with a naive search on random text with planted and partial needles`, () => {
    const next = random(7);
    for (let round = 0; round < 300; round++) {
      // A small alphabet makes near-misses (shared prefixes and suffixes) common.
      const needle = Uint8Array.from({ length: 1 + next(12) }, () => 13 + next(3));
      const haystack = Uint8Array.from({ length: next(400) }, () => 13 + next(4));
      for (let plant = next(3); plant > 0 && haystack.length >= needle.length; plant--) {
        haystack.set(needle.subarray(0, 1 + next(needle.length)), next(haystack.length - needle.length + 1));
      }
      const find = finder(needle);
      for (const from of [0, 1, next(haystack.length + 1), haystack.length]) {
        assert.equal(find(haystack, from), naive(haystack, needle, from), `round ${round}, from ${from}`);
      }
    }
  });
}

test("horspoolFinder() finds a multipart delimiter at every offset of a chunk, and not a truncated one", () => {
  const delimiter = new TextEncoder().encode("\r\n--------------------------a1b2c3d4e5f6a7b8");
  const find = horspoolFinder(delimiter);
  for (let at = 0; at + delimiter.length <= 300; at += 7) {
    const chunk = new Uint8Array(300).fill(45); // "-": the boundary's own filler
    chunk.set(delimiter, at);
    assert.equal(find(chunk, 0), at);
    assert.equal(find(chunk, at + 1), -1);
    assert.equal(find(chunk.subarray(0, at + delimiter.length - 1), 0), -1);
  }
});
