import assert from "node:assert/strict";
import { test } from "node:test";
import { Http1Headers, Http1ProtocolError, type Http1Response, Http1ResponseParser } from "../../src/targets/http/http1_response.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Feeds `pieces` one after another; returns the response and how many pieces it took. */
function parse(pieces: Uint8Array[]): { response: Http1Response | null; used: number } {
  const parser = new Http1ResponseParser();
  for (let i = 0; i < pieces.length; i++) {
    const response = parser.push(pieces[i]);
    if (response) return { response, used: i + 1 };
  }
  return { response: null, used: pieces.length };
}

/** Every way of cutting `bytes` in two, and byte by byte. */
function splits(bytes: Uint8Array): Uint8Array[][] {
  const ways: Uint8Array[][] = [[bytes], Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))];
  for (let cut = 1; cut < bytes.length; cut++) ways.push([bytes.subarray(0, cut), bytes.subarray(cut)]);
  return ways;
}

const jsonBody = '{"text":"naïve"}';
const lengthResponse = encode(
  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id:  r-1 \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n" +
    `Content-Length: ${encode(jsonBody).length}\r\n\r\n${jsonBody}`,
);

test("a Content-Length response is read whole however the bytes are cut", () => {
  for (const pieces of splits(lengthResponse)) {
    const { response, used } = parse(pieces);
    assert.ok(response, `cut into ${pieces.map((piece) => piece.length).join("+")}`);
    assert.equal(used, pieces.length);
    assert.equal(response.status, 200);
    assert.equal(decode(response.body), jsonBody);
    assert.equal(response.headers.get("x-request-id"), "r-1");
    assert.equal(response.headers.get("set-cookie"), "a=1, b=2");
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal(response.headers.get("retry-after"), null);
    assert.equal(response.reusable, true);
  }
});

test("a chunked response, with chunk extensions and trailers, is read whole however the bytes are cut", () => {
  const bytes = encode(
    "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5;name=value\r\nhello\r\n1\r\n,\r\nA \r\n0123456789\r\n0\r\nX-Checksum: 1\r\n\r\n",
  );
  for (const pieces of splits(bytes)) {
    const { response } = parse(pieces);
    assert.ok(response);
    assert.equal(response.status, 201);
    assert.equal(decode(response.body), "hello,0123456789");
    assert.equal(response.reusable, true);
  }
});

test("interim 1xx responses are skipped; the final response is returned", () => {
  const bytes = encode(
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
  );
  for (const pieces of splits(bytes)) {
    const { response } = parse(pieces);
    assert.equal(response?.status, 200);
    assert.equal(response.headers.get("link"), null);
    assert.equal(decode(response.body), "{}");
  }
});

test("a body with no length runs to the end of the connection, which is then not reusable", () => {
  const parser = new Http1ResponseParser();
  assert.equal(parser.push(encode("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":")), null);
  assert.equal(parser.push(encode("1}")), null);
  const response = parser.end();
  assert.equal(decode(response.body), '{"a":1}');
  assert.equal(response.reusable, false);
});

test("reuse follows the version and Connection; bytes past the end forbid it", () => {
  const reusable = (text: string) => parse([encode(text)]).response?.reusable;
  assert.equal(reusable("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), false);
  assert.equal(reusable("HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n"), false);
  assert.equal(reusable("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), false);
  assert.equal(reusable("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"), true);
  assert.equal(reusable("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1"), false);
  // Transfer-Encoding wins over Content-Length, and the connection is not reused.
  const both = parse([encode("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")]);
  assert.equal(decode(both.response!.body), "{}");
  assert.equal(both.response!.reusable, false);
});

test("204 and 304 responses have no body; bare LF line ends are accepted", () => {
  for (const status of [204, 304]) {
    const { response } = parse([encode(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\n`)]);
    assert.equal(response?.status, status);
    assert.equal(response.body.length, 0);
  }
  const { response } = parse([encode("HTTP/1.1 200\nContent-Length: 2\n\n{}")]);
  assert.equal(decode(response!.body), "{}");
  assert.equal(response!.status, 200);
});

test("repeated identical Content-Length values are one; different ones are an error", () => {
  assert.equal(decode(parse([encode("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}")]).response!.body), "{}");
  assert.throws(() => parse([encode("HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}")]), /invalid content-length/);
});

test("malformed responses throw Http1ProtocolError, saying what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["HTTP/2 200 OK\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 20 OK\r\n\r\n", /malformed status line/],
    ["<html>hello</html>\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", /malformed header line "Bad Name: x"/],
    ["HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /invalid content-length/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", /malformed chunk size "zz"/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX", /does not end with CRLF/],
    ["HTTP/1.1 101 Switching Protocols\r\n\r\n", /switched protocols/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parse([encode(text)]), (error: unknown) => error instanceof Http1ProtocolError && message.test(error.message), text);
  }
  const huge = new Http1ResponseParser();
  assert.throws(() => huge.push(encode(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(70_000)}`)), /larger than 64 KiB/);
});

test("a connection that ends early is an error that says whether anything arrived", () => {
  assert.throws(() => new Http1ResponseParser().end(), /closed before any response/);
  const parser = new Http1ResponseParser();
  parser.push(encode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{"));
  assert.equal(parser.started, true);
  assert.throws(() => parser.end(), /closed before the response ended/);
  const done = new Http1ResponseParser();
  done.push(encode("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  assert.throws(() => done.push(encode("x")), /after the response ended/);
});

test("Http1Headers looks fields up by name in any case, trims blanks, joins repeats", () => {
  const bytes = encode("Retry-After:\t3 \r\nX-A: 1\r\nx-a: 2\r\nEmpty:\r\n");
  const headers = new Http1Headers(bytes, 0, bytes.length);
  assert.equal(headers.get("retry-after"), "3");
  assert.equal(headers.get("x-a"), "1, 2");
  assert.equal(headers.get("empty"), "");
  assert.equal(headers.get("x-b"), null);
  // `^` and `~` differ only in the bit that ASCII case folding flips: no false match.
  const tricky = encode("a^b: 1\r\n");
  assert.equal(new Http1Headers(tricky, 0, tricky.length).get("a~b"), null);
});
