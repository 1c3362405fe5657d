import assert from "node:assert/strict";
import { test } from "node:test";
import { MarkingSha256, type MarkedDigest, verifiedStream } from "../../src/integrity/digest_marks.ts";
import { IntegrityError } from "../../src/integrity/envelope.ts";
import { createPortableSha256, createSha256, sha256Hex } from "../../src/integrity/sha256.ts";

/** Deterministic bytes: a different value at every position of the first 251. */
function bytesOf(length: number, seed = 7): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + seed) % 251;
  return out;
}

/** Splits bytes into chunks of the given sizes, cycling through them. */
function chunksOf(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length];
    out.push(bytes.slice(at, at + size));
    at += size;
  }
  return out;
}

function digestOf(bytes: Uint8Array, every: number, sizes: number[] = [bytes.length || 1]): MarkedDigest {
  const hash = new MarkingSha256(every);
  for (const chunk of chunksOf(bytes, sizes)) hash.update(chunk);
  return hash.finish();
}

/** Streams the chunks through a verified stream; returns the bytes passed on and the error, if any. */
async function throughVerifier(chunks: Uint8Array[], expected: MarkedDigest): Promise<{ passed: number; error: unknown }> {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  let passed = 0;
  try {
    for await (const chunk of verifiedStream(source, expected)) passed += chunk.length;
  } catch (error) {
    return { passed, error };
  }
  return { passed, error: null };
}

test("sha256: digestSoFar gives each prefix's digest and the computation goes on, on both implementations", () => {
  const bytes = bytesOf(1000);
  for (const create of [createSha256, createPortableSha256]) {
    const hash = create();
    hash.update(bytes.subarray(0, 300));
    assert.equal(hash.digestSoFar(), sha256Hex(bytes.subarray(0, 300)));
    hash.update(bytes.subarray(300));
    assert.equal(hash.digestSoFar(), sha256Hex(bytes));
    assert.equal(hash.hexDigest(), sha256Hex(bytes));
  }
});

test("MarkingSha256: a mark at every multiple of `every`, whatever the chunk boundaries", () => {
  const bytes = bytesOf(10_007);
  const every = 1000;
  const expected = Array.from({ length: 10 }, (_, k) => sha256Hex(bytes.subarray(0, (k + 1) * every)));
  for (const sizes of [[1], [7, 13], [999], [1000], [1001], [4093], [10_007], [2000, 1, 3]]) {
    const digest = digestOf(bytes, every, sizes);
    assert.deepEqual(digest.marks, { every, digests: expected }, `chunks of ${sizes}`);
    assert.equal(digest.sha256, sha256Hex(bytes));
    assert.equal(digest.bytes, bytes.length);
  }
  assert.deepEqual(digestOf(bytesOf(999), 1000).marks.digests, [], "no mark before the first `every` bytes");
  assert.deepEqual(digestOf(new Uint8Array(0), 1000), { sha256: sha256Hex(""), bytes: 0, marks: { every: 1000, digests: [] } });
  assert.throws(() => new MarkingSha256(0), RangeError);
});

test("verifiedStream: unchanged bytes pass whole and in order, at any chunking", async () => {
  const bytes = bytesOf(10_500);
  for (const every of [1000, 10_500, 1 << 20]) {
    const expected = digestOf(bytes, every);
    for (const sizes of [[1, 2, 3], [999], [1000], [4096], [10_500]]) {
      const source = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunksOf(bytes, sizes)) controller.enqueue(chunk);
          controller.close();
        },
      });
      const out: number[] = [];
      for await (const chunk of verifiedStream(source, expected)) out.push(...chunk);
      assert.deepEqual(new Uint8Array(out), bytes, `every ${every}, chunks of ${sizes}`);
    }
  }
});

test("verifiedStream: a changed byte fails its stretch; every byte proven before it is passed on, none of it", async () => {
  const bytes = bytesOf(10_500);
  const every = 1000;
  const expected = digestOf(bytes, every);
  for (const at of [0, 999, 1000, 4321, 9999, 10_000, 10_499]) {
    const changed = bytes.slice();
    changed[at] ^= 1;
    const stretchStart = Math.floor(at / every) * every;
    for (const sizes of [[1000], [333], [4096], [10_500]]) {
      const { passed, error } = await throughVerifier(chunksOf(changed, sizes), expected);
      assert.ok(error instanceof IntegrityError, `byte ${at}, chunks of ${sizes}: ${error}`);
      assert.equal(passed, stretchStart, `byte ${at}, chunks of ${sizes}: bytes passed on before the changed stretch`);
    }
  }
});

test("verifiedStream: a shorter or longer stream fails, and nothing past the recorded size is held", async () => {
  const bytes = bytesOf(5000);
  const expected = digestOf(bytes, 1000);
  const shorter = await throughVerifier(chunksOf(bytes.subarray(0, 4999), [700]), expected);
  assert.ok(shorter.error instanceof IntegrityError);
  assert.match((shorter.error as Error).message, /shorter/);
  assert.equal(shorter.passed, 4000, "the proven stretches, not the unproven tail");
  const longer = await throughVerifier([...chunksOf(bytes, [700]), new Uint8Array(1)], expected);
  assert.ok(longer.error instanceof IntegrityError);
  assert.match((longer.error as Error).message, /longer/);
  assert.ok(longer.passed <= 5000, "nothing past the recorded size");
  const truncatedAtMark = await throughVerifier(chunksOf(bytes.subarray(0, 3000), [1000]), expected);
  assert.ok(truncatedAtMark.error instanceof IntegrityError, "ending exactly at a mark is still too short");
});

test("verifiedStream: the next stretch is read and checked while the consumer works through one, and no further", async () => {
  const bytes = bytesOf(5000);
  const expected = digestOf(bytes, 1000);
  const chunks = chunksOf(bytes, [100]);
  let pulled = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled === chunks.length) return controller.close();
      controller.enqueue(chunks[pulled++]);
    },
  }, { highWaterMark: 0 });
  const reader = verifiedStream(source, expected).getReader();
  const first = await reader.read();
  assert.equal(first.value?.length, 100);
  // The source is in memory: once a macrotask turn passes with no pull, the read-ahead has stopped where it stops.
  let seen = -1;
  while (pulled !== seen) {
    seen = pulled;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  assert.equal(pulled, 20, "the second stretch was read ahead, the third was not");
  let passed = first.value!.length;
  for (let r = await reader.read(); !r.done; r = await reader.read()) passed += r.value.length;
  assert.equal(passed, 5000);
});
