import assert from "node:assert/strict";
import { test } from "node:test";
import { rawMemberValue } from "../../src/batch/input/raw_json.ts";

test("rawMemberValue: the value's exact text, big integers and number spellings kept", () => {
  const line = '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"seed":12345678901234567890,"temperature":1.0}}';
  assert.equal(rawMemberValue(line, "body"), '{"seed":12345678901234567890,"temperature":1.0}');
  assert.equal(rawMemberValue(line, "custom_id"), '"a"');
  assert.equal(rawMemberValue(line, "missing"), undefined);
  assert.equal(rawMemberValue(' \t{ "body" :\r\n [1, {"}": "]"}] , "x": null }', "body"), '[1, {"}": "]"}]');
  assert.equal(rawMemberValue('{"body":1,"body":{"b":2}}', "body"), '{"b":2}', "the last of repeated names, as JSON.parse");
  assert.equal(rawMemberValue('{"bo\\u0064y":{"k":"v"}}', "body"), '{"k":"v"}', "an escaped name");
  assert.equal(rawMemberValue('{"a":"q\\"}\\\\","body":true}', "body"), "true", "escaped quotes and backslashes in strings");
  assert.equal(rawMemberValue("[1]", "body"), undefined);
});

test("rawMemberValue: on random objects its text parses to exactly what JSON.parse gives", () => {
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const strings = ['a', '"', "\\", "\\\"", "}", "]", "{", "[", ",", ":", "é ✓ 𝄞", "\n\t\r", "\u0000", ""];
  const text = (): string => Array.from({ length: Math.floor(random() * 4) }, () => pick(strings)).join("");
  const value = (depth: number): unknown => {
    const kind = depth > 3 ? Math.floor(random() * 4) : Math.floor(random() * 6);
    if (kind === 0) return text();
    if (kind === 1) return Math.floor(random() * 1e6) / 8 - 1000;
    if (kind === 2) return pick([true, false, null]);
    if (kind === 3) return random() < 0.5 ? 0 : -1e21;
    if (kind === 4) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, () => [text(), value(depth + 1)]));
  };
  const space = () => pick(["", " ", "\t", "\r\n ", "  "]);
  const serialise = (v: unknown): string => {
    if (Array.isArray(v)) return `[${space()}${v.map((item) => serialise(item)).join(`${space()},${space()}`)}${space()}]`;
    if (v !== null && typeof v === "object") {
      const members = Object.entries(v).map(([k, item]) => `${JSON.stringify(k)}${space()}:${space()}${serialise(item)}`);
      return `{${space()}${members.join(`${space()},${space()}`)}${space()}}`;
    }
    return JSON.stringify(v);
  };
  for (let round = 0; round < 2000; round++) {
    const object = { custom_id: text(), [text()]: value(1), body: value(0), [`${text()}x`]: value(1) };
    const json = serialise(object);
    const raw = rawMemberValue(json, "body");
    assert.ok(raw !== undefined, json);
    assert.deepEqual(JSON.parse(raw), JSON.parse(json).body, `round ${round}: ${json}`);
    assert.ok(json.includes(raw));
  }
});
