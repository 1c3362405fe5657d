import assert from "node:assert/strict";
import { test } from "node:test";
import { sipHash32, sipHash64, sipHashKey } from "../../src/shared/siphash.ts";

// The reference vectors of SipHash-2-4 (Aumasson and Bernstein's vectors.h): key 00..0f, message 00..(n-1).
const VECTORS: [number, bigint][] = [
  [0, 0x726fdb47dd0e0e31n],
  [1, 0x74f839c593dc67fdn],
  [7, 0xab0200f58b01d137n],
  [8, 0x93f5f5799a932462n],
  [15, 0xa129ca6149be45e5n],
  [63, 0x958a324ceb064572n],
];

test("sipHash64: SipHash-2-4 gives the reference vectors, across the last word's lengths", () => {
  const key = sipHashKey(Uint8Array.from({ length: 16 }, (_, i) => i));
  for (const [length, expected] of VECTORS) {
    const message = Uint8Array.from({ length }, (_, i) => i);
    assert.equal(sipHash64(key, message).toString(16), expected.toString(16), `${length} bytes`);
  }
});

test("sipHash32: another key, another hash; keys are 16 bytes", () => {
  const message = new TextEncoder().encode("request-1");
  const a = sipHashKey(new Uint8Array(16).fill(1));
  const b = sipHashKey(new Uint8Array(16).fill(2));
  assert.equal(sipHash32(a, message), sipHash32(a, message));
  assert.notEqual(sipHash32(a, message), sipHash32(b, message));
  assert.ok(sipHash32(a, message) >= 0 && sipHash32(a, message) < 2 ** 31);
  assert.notDeepEqual(sipHashKey(), sipHashKey(), "a fresh key each time");
  assert.throws(() => sipHashKey(new Uint8Array(8)), RangeError);
});
