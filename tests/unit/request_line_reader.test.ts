import assert from "node:assert/strict";
import { test } from "node:test";
import { BLANK_LINE, requestLineReader } from "../../src/batch/input/request_line_reader.ts";
import { DEFAULT_VALIDATION_LIMITS, InputScanner } from "../../src/batch/input/validation.ts";

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** What batch validation looks at in a parsed line: the type, and the fields it reads. */
function seen(value: unknown): unknown {
  const kind = (v: unknown) => Array.isArray(v) ? "array" : v !== null && typeof v === "object" ? "object" : v;
  if (value === null || typeof value !== "object" || Array.isArray(value)) return kind(value);
  const line = value as Record<string, unknown>;
  const body = line.body;
  return {
    custom_id: kind(line.custom_id),
    method: kind(line.method),
    url: kind(line.url),
    body: body !== null && typeof body === "object" && !Array.isArray(body)
      ? { model: kind((body as Record<string, unknown>).model), stream: kind((body as Record<string, unknown>).stream) }
      : kind(body),
  };
}

/** The reference: decoding the line strictly, then `JSON.parse`; undefined when either fails. */
function reference(bytes: Uint8Array): { value: unknown } | undefined {
  try {
    const text = strictDecoder.decode(bytes);
    return text.trim() === "" ? { value: BLANK_LINE } : { value: JSON.parse(text) };
  } catch {
    return undefined;
  }
}

/** Reads `line` placed at `offset` in a larger buffer (other lines around it); checks the line end. */
function readAt(line: Uint8Array, offset: number): unknown {
  const buffer = new Uint8Array(offset + line.length + 40).fill(0x78);
  buffer.set(line, offset);
  buffer[offset + line.length] = 10;
  buffer[offset - 1] = 10;
  const value = requestLineReader.read(buffer, offset, buffer.length);
  if (value !== undefined) {
    assert.equal(requestLineReader.lineEnd, offset + line.length, "the line ends at its line feed");
  }
  return value;
}

/** Asserts the reader agrees with the reference on `line`; returns whether it read the line itself. */
function agrees(line: Uint8Array, offset = 1): boolean {
  const expected = reference(line);
  const read = readAt(line, offset);
  const shown = JSON.stringify(new TextDecoder().decode(line)).slice(0, 200);
  if (read === undefined) {
    return false;
  }
  assert.ok(expected, `read a line JSON.parse rejects: ${shown}`);
  if (expected.value === BLANK_LINE) assert.equal(read, BLANK_LINE, shown);
  else assert.deepEqual(seen(read), seen(expected.value), shown);
  return true;
}

const VALID = [
  '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}',
  ' \t{ "custom_id" : "b" , "method":"POST", "url":"/v1/x", "body" : { "stream" : true, "model":"m" } } \r',
  '{"custom_id":"é✓𝄞","method":"POST","url":"/v1/x","body":{"model":"ünï","messages":[]}}',
  '{"custom_id":"esc\\"aped\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD834\\uDD1E","body":{"model":"m\\u0041"}}',
  '{"cust\\u006fm_id":"escaped key","b\\u006fdy":{"str\\u0065am":true}}',
  '{"body":{"stream":true,"model":"first"},"body":{"model":"second"}}',
  '{"body":{"model":"m"},"body":5}',
  '{"custom_id":"x","custom_id":7}',
  '{"custom_id":null,"method":null,"url":null,"body":null}',
  '{"custom_id":{"a":[1,2,{"b":null}]},"method":["POST"],"url":{},"body":[]}',
  '{"body":{"stream":false,"model":12.5e-3,"nested":{"stream":true,"model":"no"}},"other":{"body":{"stream":true}}}',
  '{"a":-0,"b":0.5,"c":1E+9,"d":-12e-0,"e":[true,false,null],"f":{}}',
  '{"__proto__":{"custom_id":"p"},"custom_id":"own"}',
  "{}",
  "[]",
  '[{"custom_id":"in array"}]',
  "5",
  "-1.25",
  '"just a string"',
  "true",
  "null",
  "",
  "   \t \r",
  "\r",
  '{"s":"\u007f delete is allowed"}',
];

const INVALID = [
  '{"a":1,}',
  "[1,2,]",
  "{'a':1}",
  "NaN",
  "Infinity",
  "-",
  "01",
  "1.",
  ".5",
  "1e",
  "1e+",
  "+1",
  '{"a":01}',
  '{"a":"\u0001"}',
  '{"a":"tab\tinside"}',
  '{"a":"\\x41"}',
  '{"a":"\\u12"}',
  '{"a":"\\u12G4"}',
  '{"a":"unterminated}',
  '{"a" 1}',
  '{"a":1 "b":2}',
  "{a:1}",
  "{} {}",
  "{},{}",
  "[1] x",
  "tru",
  "nul",
  "falsey",
  '{"a":[1,2}',
  '{"a":{"b":1]}',
  "\u00a0{}",
  "{}\u00a0",
  "\ufeff{}",
  '{"a":1}//comment',
  '"\\',
  "[",
  "{",
  '{"a"',
  '{"a":',
];

test("readRequestLine reads valid lines as JSON.parse does, wherever validation looks", () => {
  for (const text of VALID) {
    for (const offset of [1, 2, 3, 4, 7]) {
      assert.ok(agrees(encoder.encode(text), offset), `read itself: ${JSON.stringify(text)}`);
    }
  }
  assert.equal(readAt(encoder.encode("  \r"), 1), BLANK_LINE);
});

test("readRequestLine leaves every line JSON.parse rejects to it", () => {
  for (const text of INVALID) {
    assert.equal(readAt(encoder.encode(text), 3), undefined, JSON.stringify(text));
  }
  // Not UTF-8: a lone continuation byte, an overlong encoding, an encoded surrogate, a truncated sequence.
  for (const bad of [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    const line = new Uint8Array([...encoder.encode('{"custom_id":"'), ...bad, ...encoder.encode('"}')]);
    assert.equal(readAt(line, 2), undefined, `bytes ${bad}`);
  }
});

test("readRequestLine leaves to JSON.parse what nests deeper than it follows, and a line with no line feed", () => {
  const deep = "[".repeat(200) + "]".repeat(200);
  assert.equal(readAt(encoder.encode(deep), 1), undefined);
  assert.ok(reference(encoder.encode(deep)), "JSON.parse reads it, so the caller will");
  const bytes = encoder.encode('{"custom_id":"a"}');
  assert.equal(requestLineReader.read(bytes, 0, bytes.length), undefined);
});

test("readRequestLine finds each line's end in a run of lines", () => {
  const text = '{"custom_id":"a"}\n\n  \r\n{"custom_id":"b","body":{"model":"m"}}\r\n[1]\n';
  const bytes = encoder.encode(text);
  const values: unknown[] = [];
  for (let start = 0; start < bytes.length;) {
    values.push(requestLineReader.read(bytes, start, bytes.length));
    start = requestLineReader.lineEnd + 1;
  }
  assert.deepEqual(values, [{ custom_id: "a" }, BLANK_LINE, BLANK_LINE, { custom_id: "b", body: { model: "m" } }, []]);
});

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("readRequestLine agrees with JSON.parse on generated lines and on every kind of damage to them", () => {
  const next = random(20261202);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  const keys = [
    "custom_id",
    "method",
    "url",
    "body",
    "model",
    "stream",
    "messages",
    "x",
    "cust\\u006fm_id",
    "__proto__",
  ];
  const strings = ["", "a", "POST", "/v1/chat/completions", "é", "𝄞", "\\n", "\\u00e9", '\\"', "x".repeat(37)];
  const space = () => pick(["", "", "", " ", "\t", "\r", "  "]);
  const value = (depth: number): string => {
    const roll = next();
    if (depth > 3 || roll < 0.35) return pick(['"' + pick(strings) + '"', "1", "-2.5e3", "0", "true", "false", "null"]);
    if (roll < 0.75) {
      const members = Array.from(
        { length: Math.floor(next() * 5) },
        () => `${space()}"${pick(keys)}"${space()}:${space()}${value(depth + 1)}${space()}`,
      );
      return `{${members.join(",")}}`;
    }
    return `[${Array.from({ length: Math.floor(next() * 4) }, () => space() + value(depth + 1) + space()).join(",")}]`;
  };
  const damage = [
    0x22,
    0x5c,
    0x2c,
    0x3a,
    0x7b,
    0x7d,
    0x5b,
    0x5d,
    0x20,
    0x09,
    0x0d,
    0x00,
    0x1f,
    0x80,
    0xc3,
    0xff,
    0x65,
    0x2d,
    0x30,
    0x75,
  ];
  let read = 0;
  for (let i = 0; i < 4000; i++) {
    const line = encoder.encode(space() + value(0) + space());
    assert.ok(agrees(line, 1 + (i % 4)), "an undamaged line is read");
    read++;
    for (let j = 0; j < 6; j++) {
      const damaged = Array.from(line);
      const at = Math.floor(next() * (damaged.length + 1));
      const roll = next();
      if (roll < 0.4) damaged.splice(at, 0, pick(damage));
      else if (roll < 0.7) damaged.splice(at, 1);
      else damaged[Math.min(at, damaged.length - 1)] = pick(damage);
      if (agrees(new Uint8Array(damaged), 1 + ((i + j) % 4))) read++;
    }
  }
  assert.ok(read > 4000, "damaged lines that are still valid are read too");
});

test("InputScanner reports on lines read from their bytes as on lines parsed whole", () => {
  const lines = [
    '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m1"}}',
    '{"custom_id":"b","method":"POST","url":"/v1/chat/completions","body":{"stream":true,"model":"m"},"body":{"model":"m"}}',
    '{"cust\\u006fm_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}',
    "\u00a0",
    '{"custom_id":"c","method":"GET","url":"/v1/embeddings","body":{"str\\u0065am":true}}',
    '{"custom_id":"","method":"POST","url":7,"body":[]}',
    "[1]",
    '{"custom_id":"d","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}',
  ];
  const bytes = new Uint8Array([...encoder.encode(lines.join("\r\n") + "\n"), 0xff, 0x0a]);
  const scanner = new InputScanner(DEFAULT_VALIDATION_LIMITS);
  for (let at = 0; at < bytes.length; at += 13) scanner.push(bytes.subarray(at, at + 13));
  const scan = scanner.finish();
  // A line of other white space than JSON's is a request, and not valid JSON.
  assert.equal(scan.requests, 9);
  assert.equal(scan.model, "m1");
  assert.deepEqual(scan.errors.map((e) => [e.code, e.param, e.line]), [
    ["duplicate_custom_id", "custom_id", 3],
    ["invalid_json_line", null, 4],
    ["invalid_request", "method", 5],
    ["streaming_unsupported", "body.stream", 5],
    ["invalid_request", "custom_id", 6],
    ["invalid_url", "url", 6],
    ["invalid_request", "body", 6],
    ["invalid_request", null, 7],
    ["invalid_json_line", null, 8],
    ["invalid_json_line", null, 9],
  ]);
  assert.deepEqual(Object.keys(scan.urls), ["/v1/chat/completions", "/v1/embeddings"]);
});

/**
 * The verdict the README documents for one line, worked out from `JSON.parse`
 * of its text without any of batchspool's validation code: `[code, param]`
 * for each problem, in the order validation reports them.
 */
function documentedVerdict(text: string, endpoint: string, seenIds: Set<string>): [string, string | null][] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [["invalid_json_line", null]];
  }
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(value)) return [["invalid_request", null]];
  const problems: [string, string | null][] = [];
  for (const field of ["custom_id", "method", "url", "body"]) {
    if (value[field] === undefined || value[field] === null) problems.push(["missing_required_parameter", field]);
  }
  const { custom_id: customId, method, url, body } = value;
  if (customId !== undefined && customId !== null && (typeof customId !== "string" || customId === "")) {
    problems.push(["invalid_request", "custom_id"]);
  }
  if (method !== undefined && method !== null && method !== "POST") problems.push(["invalid_request", "method"]);
  if (url !== undefined && url !== null && typeof url !== "string") problems.push(["invalid_url", "url"]);
  if (body !== undefined && body !== null) {
    if (!isObject(body)) problems.push(["invalid_request", "body"]);
    else if (body.stream === true) problems.push(["streaming_unsupported", "body.stream"]);
  }
  if (typeof url === "string" && url !== endpoint) problems.push(["invalid_url", "url"]);
  if (typeof customId === "string") {
    if (seenIds.has(customId)) problems.push(["duplicate_custom_id", "custom_id"]);
    seenIds.add(customId);
  }
  return problems;
}

test("InputScanner gives every line the documented verdict: whole-line values of every JSON type, any value in each field", () => {
  const next = random(20261203);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
  const endpoint = "/v1/chat/completions";
  const scalars = ['""', '"x"', '"POST"', `"${endpoint}"`, '"/v1/embeddings"', "0", "-7.5", "true", "false", "null"];
  const containers = ["{}", "[]", '[1,"a",null]', '{"a":{"b":[]}}', '{"model":"m","stream":true}'];
  const anyValue = () => pick([...scalars, ...containers]);
  const bodies = [...scalars, ...containers, '{"model":"m"}', '{"stream":false}', '{"stream":"true"}', '{"model":7,"messages":[]}'];
  let unique = 0;
  const lines: string[] = [];
  // Every JSON type as a whole line, then generated objects with each field absent or any value.
  for (const whole of [...scalars, ...containers, '"s"', "7", "[null]", " null ", "\tfalse"]) lines.push(whole);
  for (let i = 0; i < 3000; i++) {
    const members: string[] = [];
    const roll = () => next();
    if (roll() < 0.85) members.push(`"custom_id":${roll() < 0.6 ? `"id-${unique++}"` : anyValue()}`);
    if (roll() < 0.85) members.push(`"method":${roll() < 0.6 ? '"POST"' : anyValue()}`);
    if (roll() < 0.85) members.push(`"url":${roll() < 0.6 ? `"${endpoint}"` : anyValue()}`);
    if (roll() < 0.85) members.push(`"body":${pick(bodies)}`);
    if (roll() < 0.2) members.push(`"extra":${anyValue()}`);
    for (let j = members.length - 1; j > 0; j--) {
      const k = Math.floor(next() * (j + 1));
      [members[j], members[k]] = [members[k], members[j]];
    }
    lines.push(`{${members.join(",")}}`);
  }
  const scanner = new InputScanner({ ...DEFAULT_VALIDATION_LIMITS, maxErrors: 1_000_000 }, endpoint);
  const bytes = encoder.encode(lines.join("\n") + "\n");
  for (let at = 0; at < bytes.length; at += 4096) scanner.push(bytes.subarray(at, at + 4096));
  const scan = scanner.finish();
  const seenIds = new Set<string>();
  const expected = lines.flatMap((text, i) => documentedVerdict(text, endpoint, seenIds).map(([code, param]) => [code, param, i + 1]));
  assert.deepEqual(scan.errors.map((e) => [e.code, e.param, e.line]), expected);
  assert.equal(scan.requests, lines.length);
});

test("InputScanner keeps no ids past the request limit: a file over it is refused, its later repeats not looked for", () => {
  const scanner = new InputScanner({ ...DEFAULT_VALIDATION_LIMITS, maxRequests: 3 });
  const line = (id: string) =>
    JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } });
  scanner.push(new TextEncoder().encode(["a", "b", "a", "c", "c", "d", "d"].map(line).join("\n")));
  const scan = scanner.finish();
  assert.equal(scan.requests, 7);
  assert.deepEqual(scan.errors.map((e) => [e.code, e.line]), [["duplicate_custom_id", 3], ["invalid_request", 4]]);
});
