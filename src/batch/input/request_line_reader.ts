/**
 * Reading a batch request line straight from its bytes: checking that it is
 * one JSON value and taking out only what validation looks at, without
 * decoding the line or building the rest of its value.
 *
 * One cohesive thing: a JSON reader over bytes, whose parts (strings, numbers,
 * containers, the fields it keeps) are only correct together; split, they
 * would share all of its state through a wider interface.
 *
 * Why: a batch input is mostly the text of its prompts. Decoding every line and
 * `JSON.parse`-ing it builds all of that text as strings (twice: the line, then
 * its values) only for validation to look at a few fields, and fresh memory
 * is slow to get (page faults). Here string contents are skipped four bytes
 * at a time and nothing is built but the fields read.
 *
 * The answer is exact or absent: a line this reader does not read (one that is
 * not valid JSON or not UTF-8, or nests deeper than it follows) is left to the
 * caller, who decodes it and uses `JSON.parse`; and it reads a line only when
 * `JSON.parse` of the decoded line would succeed (tests/request_line_reader.test.ts
 * compares the two on generated lines and on damaged copies of them).
 *
 * @module
 */
import { isUtf8 } from "node:buffer";
import { decodeUtf8 } from "../../runtime/decode_utf8.ts";

/** What {@link RequestLineReader.read} returns for a line that is empty or only JSON white space. */
export const BLANK_LINE: unique symbol = Symbol("blank line");

const NEWLINE = 10;
const QUOTE = 34;
const BACKSLASH = 92;
const MAX_DEPTH = 64;
/** Longest text built character by character rather than decoded. */
const SHORT_TEXT = 32;

/** Bytes that end a run of plain string content: control characters, `"`, `\`, and non-ASCII bytes. */
const STOPS_STRING = new Uint8Array(256);
for (let byte = 0; byte < 256; byte++) {
  STOPS_STRING[byte] = byte < 0x20 || byte === QUOTE || byte === BACKSLASH || byte >= 0x80 ? 1 : 0;
}
/** Characters that may follow `\` (besides `u`). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const char of `"\\/bfnrt`) SIMPLE_ESCAPE[char.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const char of "0123456789abcdefABCDEF") HEX[char.charCodeAt(0)] = 1;

const encoder = new TextEncoder();
/** The line's fields validation reads, then its body's. */
const LINE_FIELDS = ["custom_id", "method", "url", "body"];
const BODY_FIELDS = ["model", "stream"];
const LINE_FIELD_BYTES = LINE_FIELDS.map((name) => encoder.encode(name));
const BODY_FIELD_BYTES = BODY_FIELDS.map((name) => encoder.encode(name));
/** Where a field's span is kept in `spans`: the line's fields first, then the body's. */
const BODY_SLOT = LINE_FIELDS.indexOf("body");
const FIRST_BODY_FIELD_SLOT = LINE_FIELDS.length;
const SLOTS = LINE_FIELDS.length + BODY_FIELDS.length;
/** Which object a value is, when it is one: the line, its body, or another. */
const OTHER_OBJECT = 0;
const LINE_OBJECT = 1;
const BODY_OBJECT = 2;

/**
 * Reads request lines from their bytes. Its state is its fields (faster in its
 * loops than module variables); as it is synchronous, one is enough:
 * {@link requestLineReader}.
 */
export class RequestLineReader {
  /** The index of the line feed that ended the line last read (when it gave a value). */
  lineEnd = -1;
  /** The bytes read and a word view of their whole buffer (the last one stays referenced: one chunk, whatever the file). */
  private bytes: Uint8Array = new Uint8Array(0);
  private words: Uint32Array = new Uint32Array(0);
  private pos = 0;
  private end = 0;
  /** A byte at or above 0x80 was seen (in a string): the line's UTF-8 is checked at the end. */
  private nonAscii = false;
  /** The last string skipped had an escape. */
  private escaped = false;
  /** Per slot, the span [start, end) of the field's last value (as with `JSON.parse`, the last one counts); -1 when absent. */
  private readonly spans = new Int32Array(2 * SLOTS);
  /** Per slot, whether its value is a string with escapes. */
  private readonly spanEscaped = new Uint8Array(SLOTS);
  /** Per slot, the last short text built, its length in bytes (-1: none) and its bytes. */
  private readonly lastText: string[] = Array(SLOTS).fill("");
  private readonly lastTextLength = new Int32Array(SLOTS).fill(-1);
  private readonly lastTextBytes = new Uint8Array(SLOTS * SHORT_TEXT);

  /**
   * Reads the line that starts at `line[start]` and ends at the next line feed
   * before `limit`: {@link BLANK_LINE}; undefined when it is left to
   * `JSON.parse` (or has no line feed before `limit`); or a value that stands
   * in for `JSON.parse` of the line wherever batch validation looks: of the
   * same type, and for an object with the same `custom_id`, `method`, `url`
   * and `body`, where an object body holds only its `model` and `stream`;
   * other objects and arrays are empty stand-ins. The line feed is found as
   * the line is read: after a value, `lineEnd` is its index.
   *
   * @example
   * ```ts
   * const bytes = new TextEncoder().encode('{"custom_id":"a","body":{"model":"m","messages":[]}}\n');
   * requestLineReader.read(bytes, 0, bytes.length); // { custom_id: "a", body: { model: "m" } }
   * requestLineReader.lineEnd; // 52
   * ```
   */
  read(line: Uint8Array, start: number, limit: number): unknown {
    if (line.buffer !== this.bytes.buffer) this.words = new Uint32Array(line.buffer, 0, line.buffer.byteLength >>> 2);
    this.bytes = line;
    this.pos = start;
    this.end = limit;
    this.nonAscii = false;
    this.spans.fill(-1);
    // Nothing below moves past a line feed: white space stops at it, and in a string it is a control character.
    this.skipWhiteSpace();
    if (this.pos >= limit) return undefined;
    const first = line[this.pos];
    if (first === NEWLINE) {
      this.lineEnd = this.pos;
      return BLANK_LINE;
    }
    if (!this.skipValue(0, -1, LINE_OBJECT)) return undefined;
    this.skipWhiteSpace();
    const lineEnd = this.pos;
    if (lineEnd >= limit || line[lineEnd] !== NEWLINE) return undefined;
    if (this.nonAscii && !isUtf8(line.subarray(start, lineEnd))) return undefined;
    this.lineEnd = lineEnd;
    if (first === 0x5b) return [];
    if (first !== 0x7b) return this.parse(start, lineEnd);
    const value: Record<string, unknown> = {};
    for (let slot = 0; slot < LINE_FIELDS.length; slot++) {
      if (this.spans[2 * slot] >= 0) {
        value[LINE_FIELDS[slot]] = slot === BODY_SLOT ? this.bodyStandIn() : this.slotValue(slot);
      }
    }
    return value;
  }

  private bodyStandIn(): unknown {
    if (this.bytes[this.spans[2 * BODY_SLOT]] !== 0x7b) return this.slotValue(BODY_SLOT);
    const body: Record<string, unknown> = {};
    for (let field = 0; field < BODY_FIELDS.length; field++) {
      const slot = FIRST_BODY_FIELD_SLOT + field;
      if (this.spans[2 * slot] >= 0) body[BODY_FIELDS[field]] = this.slotValue(slot);
    }
    return body;
  }

  /** The value recorded in a slot: an empty stand-in for an object or an array, the value itself otherwise. */
  private slotValue(slot: number): unknown {
    const start = this.spans[2 * slot];
    const stop = this.spans[2 * slot + 1];
    switch (this.bytes[start]) {
      case 0x7b:
        return {};
      case 0x5b:
        return [];
      case 0x74:
        return true;
      case 0x66:
        return false;
      case 0x6e:
        return null;
      case QUOTE:
        // Without escapes a string's value is its bytes decoded.
        return this.spanEscaped[slot] ? this.parse(start, stop) : this.slotText(slot, start + 1, stop - 1);
      default:
        return this.parse(start, stop);
    }
  }

  /**
   * The text of bytes [start, stop) (valid UTF-8) for a slot: the slot's last
   * text again when the bytes are the same (a file's lines mostly name the
   * same `method`, `url` and `model`), else the bytes decoded.
   */
  private slotText(slot: number, start: number, stop: number): string {
    const line = this.bytes;
    const length = stop - start;
    if (length > SHORT_TEXT) return decodeUtf8(line.subarray(start, stop));
    const saved = this.lastTextBytes;
    const from = slot * SHORT_TEXT;
    if (this.lastTextLength[slot] === length) {
      let at = 0;
      while (at < length && line[start + at] === saved[from + at]) at++;
      if (at === length) return this.lastText[slot];
    }
    const text = shortText(line, start, stop);
    for (let at = 0; at < length; at++) saved[from + at] = line[start + at];
    this.lastTextLength[slot] = length;
    this.lastText[slot] = text;
    return text;
  }

  private parse(start: number, stop: number): unknown {
    return JSON.parse(decodeUtf8(this.bytes.subarray(start, stop)));
  }

  private skipWhiteSpace() {
    const line = this.bytes;
    const stop = this.end;
    let at = this.pos;
    while (at < stop) {
      const byte = line[at];
      if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0d) break;
      at++;
    }
    this.pos = at;
  }

  /**
   * Skips the value at `pos`; false when it is not valid JSON. Records its span
   * in `slot` (-1: none); `kind` says which object it is, if it is one.
   */
  private skipValue(depth: number, slot: number, kind: number): boolean {
    if (this.pos >= this.end) return false;
    const valueStart = this.pos;
    let ok: boolean;
    switch (this.bytes[this.pos]) {
      case QUOTE:
        this.pos++;
        ok = this.skipString();
        break;
      case 0x7b:
        ok = this.skipContainer(depth, kind, true);
        break;
      case 0x5b:
        ok = this.skipContainer(depth, OTHER_OBJECT, false);
        break;
      case 0x74:
        ok = this.skipWord("true");
        break;
      case 0x66:
        ok = this.skipWord("false");
        break;
      case 0x6e:
        ok = this.skipWord("null");
        break;
      default:
        ok = this.skipNumber();
    }
    if (ok && slot >= 0) {
      this.spans[2 * slot] = valueStart;
      this.spans[2 * slot + 1] = this.pos;
      this.spanEscaped[slot] = this.bytes[valueStart] === QUOTE && this.escaped ? 1 : 0;
    }
    return ok;
  }

  /** Skips an object (`isObject`) or an array whose opening byte is at `pos`; `kind` says which object. */
  private skipContainer(depth: number, kind: number, isObject: boolean): boolean {
    if (depth >= MAX_DEPTH) return false;
    const close = isObject ? 0x7d : 0x5d;
    this.pos++;
    this.skipWhiteSpace();
    if (this.pos < this.end && this.bytes[this.pos] === close) {
      this.pos++;
      return true;
    }
    for (;;) {
      if (!(isObject ? this.skipMember(depth, kind) : this.skipValue(depth + 1, -1, OTHER_OBJECT))) return false;
      this.skipWhiteSpace();
      if (this.pos >= this.end) return false;
      const next = this.bytes[this.pos++];
      if (next === close) return true;
      if (next !== 0x2c) return false;
      this.skipWhiteSpace();
    }
  }

  /** Skips an object's `"key": value` at `pos`, recording the value when the key is a field of `kind`. */
  private skipMember(depth: number, kind: number): boolean {
    if (this.pos >= this.end || this.bytes[this.pos] !== QUOTE) return false;
    const keyStart = ++this.pos;
    if (!this.skipString()) return false;
    let slot = -1;
    let valueKind = OTHER_OBJECT;
    if (kind === LINE_OBJECT) {
      slot = this.fieldIndex(keyStart, this.pos - 1, LINE_FIELDS, LINE_FIELD_BYTES);
      if (slot === BODY_SLOT) {
        valueKind = BODY_OBJECT;
        // A later "body" replaces an earlier one, fields and all.
        this.spans.fill(-1, 2 * FIRST_BODY_FIELD_SLOT);
      }
    } else if (kind === BODY_OBJECT) {
      const field = this.fieldIndex(keyStart, this.pos - 1, BODY_FIELDS, BODY_FIELD_BYTES);
      if (field >= 0) slot = FIRST_BODY_FIELD_SLOT + field;
    }
    this.skipWhiteSpace();
    if (this.pos >= this.end || this.bytes[this.pos] !== 0x3a) return false;
    this.pos++;
    this.skipWhiteSpace();
    return this.skipValue(depth + 1, slot, valueKind);
  }

  /** Which of `names` the key just skipped, `bytes[start, stop)` without quotes, is; -1 for none. */
  private fieldIndex(start: number, stop: number, names: string[], nameBytes: Uint8Array[]): number {
    if (this.escaped) {
      // An escaped key is compared decoded. Bytes that are not UTF-8 match nothing: the line is left to JSON.parse.
      try {
        return names.indexOf(this.parse(start - 1, stop + 1) as string);
      } catch {
        return -1;
      }
    }
    const line = this.bytes;
    next: for (let index = 0; index < nameBytes.length; index++) {
      const name = nameBytes[index];
      if (name.length !== stop - start) continue;
      for (let i = 0; i < name.length; i++) if (line[start + i] !== name[i]) continue next;
      return index;
    }
    return -1;
  }

  /** Skips a string's content and closing quote (`pos` is just after the opening one). */
  private skipString(): boolean {
    this.escaped = false;
    const line = this.bytes;
    const stop = this.end;
    for (;;) {
      const at = this.skipPlainContent();
      if (at >= stop) return false;
      const byte = line[at];
      if (byte === QUOTE) {
        this.pos = at + 1;
        return true;
      }
      if (byte === BACKSLASH) {
        this.escaped = true;
        const escaped = at + 1 < stop ? line[at + 1] : -1;
        if (SIMPLE_ESCAPE[escaped]) {
          this.pos = at + 2;
        } else if (
          escaped === 0x75 && at + 5 < stop && HEX[line[at + 2]] && HEX[line[at + 3]] && HEX[line[at + 4]] &&
          HEX[line[at + 5]]
        ) {
          this.pos = at + 6;
        } else {
          return false;
        }
      } else if (byte >= 0x80) {
        this.nonAscii = true;
        this.pos = at + 1;
      } else {
        return false; // a control character
      }
    }
  }

  /**
   * The index of the next byte of {@link STOPS_STRING} from `pos` on (or
   * `end`), found four bytes at a time where they are aligned: a word holds
   * such a byte when one of its bytes is below 0x20, at or above 0x80, or equal
   * to `"` or `\` (the "has a zero byte" tests, exact for whether any byte does).
   */
  private skipPlainContent(): number {
    const line = this.bytes;
    const stop = this.end;
    const offset = line.byteOffset;
    let at = this.pos;
    while (at < stop && ((offset + at) & 3) !== 0) {
      if (STOPS_STRING[line[at]]) return at;
      at++;
    }
    const words = this.words;
    let word = (offset + at) >>> 2;
    const lastWord = (offset + stop) >>> 2;
    while (word < lastWord) {
      const x = words[word];
      const quote = x ^ 0x22222222;
      const backslash = x ^ 0x5c5c5c5c;
      if (
        ((x - 0x20202020) & ~x | x | (quote - 0x01010101) & ~quote | (backslash - 0x01010101) & ~backslash) & 0x80808080
      ) break;
      word++;
    }
    at = Math.max(at, (word << 2) - offset);
    while (at < stop && !STOPS_STRING[line[at]]) at++;
    return at;
  }

  private skipWord(word: string): boolean {
    if (this.pos + word.length > this.end) return false;
    for (let i = 0; i < word.length; i++) if (this.bytes[this.pos + i] !== word.charCodeAt(i)) return false;
    this.pos += word.length;
    return true;
  }

  private skipDigits(): boolean {
    const start = this.pos;
    while (this.pos < this.end && isDigit(this.bytes[this.pos])) this.pos++;
    return this.pos > start;
  }

  /** A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
  private skipNumber(): boolean {
    const line = this.bytes;
    if (line[this.pos] === 0x2d) this.pos++;
    if (this.pos >= this.end) return false;
    if (line[this.pos] === 0x30) this.pos++;
    else if (!this.skipDigits()) return false;
    if (this.pos < this.end && line[this.pos] === 0x2e) {
      this.pos++;
      if (!this.skipDigits()) return false;
    }
    if (this.pos < this.end && (line[this.pos] === 0x65 || line[this.pos] === 0x45)) {
      this.pos++;
      if (this.pos < this.end && (line[this.pos] === 0x2b || line[this.pos] === 0x2d)) this.pos++;
      if (!this.skipDigits()) return false;
    }
    return true;
  }
}

const isDigit = (byte: number) => byte >= 0x30 && byte <= 0x39;

/** Short text, copied character by character when ASCII: a decoder call costs more (several times more on Deno). */
function shortText(bytes: Uint8Array, start: number, stop: number): string {
  let text = "";
  for (let at = start; at < stop; at++) {
    const byte = bytes[at];
    if (byte >= 0x80) return decodeUtf8(bytes.subarray(start, stop));
    text += String.fromCharCode(byte);
  }
  return text;
}

/** The reader of request lines used by batch validation. */
export const requestLineReader: RequestLineReader = new RequestLineReader();
