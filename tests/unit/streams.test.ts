import assert from "node:assert/strict";
import { test } from "node:test";
import { readLines } from "../../src/batch/input/line_splitter.ts";
import { multipartBoundary, parseMultipart } from "../../src/http/multipart.ts";

const encoder = new TextEncoder();

function streamOf(text: string | Uint8Array, chunkSize: number): ReadableStream<Uint8Array> {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + chunkSize));
      offset += chunkSize;
    },
  });
}

async function lines(text: string | Uint8Array, chunkSize: number, max?: number) {
  const out = [];
  for await (const group of readLines(streamOf(text, chunkSize), max)) out.push(...group);
  return out;
}

test("readLines() splits on LF and CRLF, strips a BOM, and numbers lines from 1, whatever the chunking", async () => {
  const text = "\uFEFFfirst\r\nsecond\n\nfourth é\nlast";
  for (const size of [1, 2, 3, 7, 64]) {
    assert.deepEqual(await lines(text, size), [
      { line: 1, text: "first" },
      { line: 2, text: "second" },
      { line: 3, text: "" },
      { line: 4, text: "fourth é" },
      { line: 5, text: "last" },
    ], `chunk size ${size}`);
  }
  assert.deepEqual(await lines("a\n", 10), [{ line: 1, text: "a" }]);
  assert.deepEqual(await lines("", 10), []);
});

test("readLines() returns the same lines from large chunks (decoded in pieces), with lines longer than a piece", async () => {
  const texts = Array.from({ length: 3000 }, (_, i) => `${i} ${"é".repeat(i % 50)}`);
  texts[1000] = "long ".repeat(30_000);
  texts[2000] = "é".repeat(70_000);
  const text = texts.join("\n") + "\n";
  const expected = texts.map((line, i) => ({ line: i + 1, text: line }));
  for (const size of [1 << 20, 200_003, 65_536]) assert.deepEqual(await lines(text, size), expected, `chunk size ${size}`);
});

test("readLines() reports over-long lines and invalid UTF-8 without stopping", async () => {
  const bytes = new Uint8Array([...encoder.encode("ok\n"), 0xff, 0xfe, 10, ...encoder.encode("x".repeat(50) + "\nend")]);
  assert.deepEqual(await lines(bytes, 4, 20), [
    { line: 1, text: "ok" },
    { line: 2, text: null, problem: "invalid_utf8" },
    { line: 3, text: null, problem: "too_long" },
    { line: 4, text: "end" },
  ]);
  // A carried line that becomes too long in the chunk that ends it, with more lines after it there.
  assert.deepEqual(await lines("a".repeat(15) + "b".repeat(10) + "\nok\nfine\n", 15, 20), [
    { line: 1, text: null, problem: "too_long" },
    { line: 2, text: "ok" },
    { line: 3, text: "fine" },
  ]);
});

test("multipartBoundary() reads the boundary of multipart/form-data only", () => {
  assert.equal(multipartBoundary("multipart/form-data; boundary=abc"), "abc");
  assert.equal(multipartBoundary('multipart/form-data; boundary="a b"'), "a b");
  assert.equal(multipartBoundary("application/json"), null);
  assert.equal(multipartBoundary("multipart/form-data"), null);
  assert.equal(multipartBoundary(null), null);
});

async function parts(body: string | Uint8Array, boundary: string, chunkSize: number) {
  const out: { name: string; filename: string | null; content: string }[] = [];
  for await (const part of parseMultipart(streamOf(body, chunkSize), boundary)) {
    out.push({ name: part.name, filename: part.filename, content: await new Response(part.body).text() });
  }
  return out;
}

test("parseMultipart() streams parts correctly across every chunk boundary", async () => {
  const file = "line one\r\n--not-the-boundary\r\n\r\n--boundar\nend";
  const body = [
    "preamble\r\n--boundary\r\n",
    'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n',
    "--boundary\r\n",
    'Content-Disposition: form-data; name="file"; filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n',
    file,
    "\r\n--boundary--\r\nepilogue",
  ].join("");
  for (const size of [1, 2, 3, 5, 7, 11, 13, 64, 4096]) {
    assert.deepEqual(await parts(body, "boundary", size), [
      { name: "purpose", filename: null, content: "batch" },
      { name: "file", filename: "in.jsonl", content: file },
    ], `chunk size ${size}`);
  }
});

test("parseMultipart() produces what FormData serialises, and skips parts left unread", async () => {
  const form = new FormData();
  form.append("a", "1");
  form.append("file", new Blob(["x".repeat(100_000)]), "big.bin");
  form.append("b", "2");
  const request = new Request("http://x/", { method: "POST", body: form });
  const boundary = multipartBoundary(request.headers.get("content-type"))!;
  const seen: string[] = [];
  for await (const part of parseMultipart(request.body!, boundary)) {
    if (part.name === "file") {
      await part.body.cancel();
      seen.push("file (skipped)");
    } else {
      seen.push(`${part.name}=${await new Response(part.body).text()}`);
    }
  }
  assert.deepEqual(seen, ["a=1", "file (skipped)", "b=2"]);
});

test("parseMultipart() rejects malformed bodies with an invalid_request error", async () => {
  const cases = [
    "no boundary at all",
    "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nunterminated",
    "--b\r\nX-No-Disposition: 1\r\n\r\nv\r\n--b--",
    "--b\r\n" + "H: " + "v".repeat(20_000),
  ];
  for (const body of cases) {
    await assert.rejects(parts(body, "b", 7), (error: Error & { code?: string }) => error.code === "invalid_request");
  }
});

test("parseMultipart() refuses a form with more parts than its limit, as an invalid_request", async () => {
  const form = (count: number) =>
    Array.from({ length: count }, (_, i) => `--b\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`).join("") + "--b--";
  assert.equal((await parts(form(64), "b", 100)).length, 64);
  await assert.rejects(parts(form(65), "b", 100), (error: Error & { code?: string }) =>
    error.code === "invalid_request" && /more than 64 fields/.test(error.message));
});
