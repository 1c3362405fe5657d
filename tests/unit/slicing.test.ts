import assert from "node:assert/strict";
import { test } from "node:test";
import { cutSlices, DEFAULT_SLICE_LIMITS, GROWTH, guidedSliceLines, sliceInput } from "../../src/engine/slicing.ts";
import { createSha256 } from "../../src/integrity/sha256.ts";

const input = (lines: number, bytesPerLine = 40) => {
  const text = Array.from({ length: lines }, (_, i) => `{"n":${i}}`.padEnd(bytesPerLine - 1, " ")).join("\n");
  return new TextEncoder().encode(text);
};
const streamOf = (bytes: Uint8Array, piece = 10_000) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.length; at += piece) controller.enqueue(bytes.subarray(at, at + piece));
      controller.close();
    },
  });

/** The slices cover the input line after line, byte after byte, each with its bytes' SHA-256. */
function assertCovers(bytes: Uint8Array, lines: number, slices: Awaited<ReturnType<typeof cutSlices>>) {
  let line = 1, byte = 0;
  for (const slice of slices) {
    assert.equal(slice.firstLine, line);
    assert.equal(slice.byteStart, byte);
    assert.equal(slice.sha256, createSha256().update(bytes.subarray(slice.byteStart, slice.byteEnd)).hexDigest());
    line += slice.lineCount;
    byte = slice.byteEnd;
  }
  assert.equal(line - 1, lines);
  assert.equal(byte, bytes.length);
}

test("cutSlices: guided slices start large for the nodes there are and end at the configured size", async () => {
  const bytes = input(20_000);
  for (const nodes of [1, 4]) {
    const slices = await cutSlices(streamOf(bytes), DEFAULT_SLICE_LIMITS, { lines: 20_000, nodes });
    assertCovers(bytes, 20_000, slices);
    const sizes = slices.map((s) => s.lineCount);
    assert.equal(sizes[0], Math.min(DEFAULT_SLICE_LIMITS.maxLines * GROWTH, Math.ceil(20_000 / (4 * nodes))), `${nodes} node(s)`);
    for (let i = 1; i < sizes.length; i++) assert.ok(sizes[i] <= sizes[i - 1], `slice sizes never grow: ${sizes.join(",")}`);
    assert.equal(sizes.at(-2), DEFAULT_SLICE_LIMITS.maxLines, "the last full slices are the configured size");
  }
});

test("cutSlices: without a guide every slice is the configured size; bytes bound a slice either way", async () => {
  const bytes = input(3_000);
  const plain = await cutSlices(streamOf(bytes), DEFAULT_SLICE_LIMITS);
  assertCovers(bytes, 3_000, plain);
  assert.ok(plain.slice(0, -1).every((s) => s.lineCount === 256));
  const wide = input(3_000, 2_000);
  const guided = await cutSlices(streamOf(wide), DEFAULT_SLICE_LIMITS, { lines: 3_000, nodes: 1 });
  assertCovers(wide, 3_000, guided);
  assert.ok(guided.every((s) => s.byteEnd - s.byteStart < 2 * DEFAULT_SLICE_LIMITS.maxBytes + 2_000), "at most about 1 MiB");
});

test("guidedSliceLines: a quarter of a node's share of what is left, between the size and eight times it", () => {
  const limits = { maxLines: 100, maxBytes: 1 << 20 };
  assert.equal(guidedSliceLines(limits, 100_000, 1), 800);
  assert.equal(guidedSliceLines(limits, 2_000, 2), 250);
  assert.equal(guidedSliceLines(limits, 50, 3), 100);
  assert.equal(guidedSliceLines(limits, 10_000, 0), 800, "no live node counted: as one");
});

test("sliceInput: a cut resumed where earlier slices end gives the slices the whole cut gives after them", async () => {
  const bytes = input(9_000, 37);
  const guide = { lines: 9_000, nodes: 2 };
  const whole = await cutSlices(streamOf(bytes, 7_777), DEFAULT_SLICE_LIMITS, guide);
  for (const at of [1, 3, whole.length - 1]) {
    const done = whole[at - 1];
    const from = { lines: done.firstLine + done.lineCount - 1, bytes: done.byteEnd };
    const rest = [];
    for await (const slice of sliceInput(streamOf(bytes, 7_777), DEFAULT_SLICE_LIMITS, guide, from)) rest.push(slice);
    assert.deepEqual(rest, whole.slice(at), `resumed after slice ${at}`);
  }
});
