import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeUtf8 } from "../../src/runtime/decode_utf8.ts";

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** What a strict TextDecoder makes of the bytes: the string, or "error". */
function reference(bytes: Uint8Array): string {
  try {
    return strict.decode(bytes);
  } catch {
    return "error";
  }
}

function ours(bytes: Uint8Array): string {
  try {
    return decodeUtf8(bytes);
  } catch (error) {
    assert.ok(error instanceof TypeError, `a TypeError, not ${error}`);
    return "error";
  }
}

test("decodeUtf8: ASCII, multi-byte text and a byte order mark decode as a strict TextDecoder does", () => {
  const encoder = new TextEncoder();
  for (const text of ["", '{"custom_id":"a"}\n', "héllo wörld ✓ 𝄞", "\ufeff{}", "\u007f\u0000"]) {
    assert.equal(decodeUtf8(encoder.encode(text)), text);
  }
  const inside = encoder.encode("xx" + "a".repeat(100) + "yy").subarray(2, 102);
  assert.equal(decodeUtf8(inside), "a".repeat(100), "a view decodes only its own bytes");
});

test("decodeUtf8: invalid UTF-8 throws, whatever the runtime's fast path", () => {
  for (const bad of [[0xff], [0x80], [0xc0, 0xaf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0x41, 0xf8, 0x88, 0x80, 0x80, 0x80]]) {
    assert.equal(ours(new Uint8Array(bad)), "error", `bytes ${bad}`);
  }
});

test("decodeUtf8: agrees with a strict TextDecoder on random, mostly ASCII bytes", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 500; round++) {
    const bytes = new Uint8Array(1 + Math.floor(random() * 300));
    for (let i = 0; i < bytes.length; i++) bytes[i] = random() < 0.97 ? Math.floor(random() * 128) : Math.floor(random() * 256);
    assert.equal(ours(bytes), reference(bytes), `round ${round}`);
  }
});
