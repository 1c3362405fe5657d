import assert from "node:assert/strict";
import { test } from "node:test";
import { IntegrityError, openEnvelope, sealEnvelope } from "../../src/integrity/envelope.ts";
import { createPortableSha256, createSha256, sha256Hex, usesNativeSha256 } from "../../src/integrity/sha256.ts";

const encoder = new TextEncoder();

const VECTORS: [string, string][] = [
  ["", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
  ["abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
  [
    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  ],
  [
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
  ],
];

test("sha256: both implementations match the standard test vectors", () => {
  for (const [input, expected] of VECTORS) {
    assert.equal(createSha256().update(encoder.encode(input)).hexDigest(), expected);
    assert.equal(createPortableSha256().update(encoder.encode(input)).hexDigest(), expected);
    assert.equal(sha256Hex(input), expected);
  }
  const million = encoder.encode("a".repeat(1_000_000));
  const expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  assert.equal(createSha256().update(million).hexDigest(), expected);
  assert.equal(createPortableSha256().update(million).hexDigest(), expected);
});

test("sha256: the native fast path is used on Deno, Bun and Node", () => {
  assert.equal(usesNativeSha256, true);
});

test("sha256: native and portable agree on random inputs split at random chunk boundaries", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let round = 0; round < 200; round++) {
    const data = new Uint8Array(Math.floor(random() * 20_000));
    crypto.getRandomValues(data.subarray(0, Math.min(data.length, 65_536)));
    const native = createSha256();
    const portable = createPortableSha256();
    let offset = 0;
    while (offset < data.length) {
      const size = Math.min(data.length - offset, 1 + Math.floor(random() * 3000));
      const chunk = data.subarray(offset, offset + size);
      native.update(chunk);
      portable.update(chunk);
      offset += size;
    }
    assert.equal(native.hexDigest(), portable.hexDigest(), `round ${round}, ${data.length} bytes`);
  }
});

test("envelope: a sealed payload opens to the same value", () => {
  const payload = { sequence: 7, batches: ["a", "b"], note: "ünïcödé\n" };
  const text = sealEnvelope(payload);
  assert.match(text, /^\{"sha256":"[0-9a-f]{64}","payload":/);
  assert.deepEqual(JSON.parse(text).payload, payload);
  assert.deepEqual(openEnvelope(text), payload);
});

test("envelope: any changed byte, truncation or foreign text is an IntegrityError", () => {
  const text = sealEnvelope({ count: 12345 });
  const flipped = text.replace("12345", "12346");
  assert.throws(() => openEnvelope(flipped), (e) => e instanceof IntegrityError && /mismatch/.test(e.message));
  assert.throws(() => openEnvelope(text.slice(0, -3)), IntegrityError);
  assert.throws(() => openEnvelope('{"count":12345}'), IntegrityError);
  assert.throws(() => openEnvelope(""), IntegrityError);
});
