/**
 * The header section of an HTTP/1.1 message, read in place: field lines are
 * checked and indexed once, and a field's value becomes a string only when it
 * is looked up. A response is asked for a handful of fields, so this is much
 * cheaper than building a map of every field.
 *
 * @module
 */

/** A malformed message; the connection it came on cannot be used any more. */
export class Http1ProtocolError extends Error {
  override name = "Http1ProtocolError";
}

/** The connection closed before the response ended (or began). */
export class ConnectionClosedError extends Http1ProtocolError {
  override name = "ConnectionClosedError";
}

const CR = 13;
const LF = 10;
const COLON = 58;
const SPACE = 32;
const TAB = 9;

/** The bytes of a field name (RFC 9110 §5.6.2 `token`). */
const TOKEN_BYTES = new Uint8Array(128);
for (const char of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_BYTES[char.charCodeAt(0)] = 1;
}

const latin1 = new TextDecoder("latin1");

/**
 * The text of `bytes[start, end)`, one character per byte. Short runs are
 * built directly: a decoder call costs more than the copy for a field value.
 */
export function latin1Text(bytes: Uint8Array, start: number, end: number): string {
  return end - start <= 256
    ? String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[])
    : latin1.decode(bytes.subarray(start, end));
}

/**
 * Header fields looked up by lower-case name; a repeated field's values are
 * joined with `", "` (as `Headers.get` does).
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode("Content-Type: application/json\r\nX-Request-Id: r1\r\n");
 * const headers = new Http1Headers(bytes, 0, bytes.length);
 * headers.get("x-request-id"); // "r1"
 * headers.get("retry-after"); // null
 * ```
 */
export class Http1Headers {
  readonly #bytes: Uint8Array;
  /** Three numbers per field line: where its name starts, its colon, and its end (before CR LF). */
  readonly #fields: number[] = [];

  /** Indexes the field lines of `bytes[start, end)`; throws {@link Http1ProtocolError} on a malformed one. */
  constructor(bytes: Uint8Array, start: number, end: number) {
    this.#bytes = bytes;
    for (let at = start; at < end;) {
      let lineEnd = bytes.indexOf(LF, at);
      if (lineEnd < 0 || lineEnd > end) lineEnd = end;
      const next = lineEnd + 1;
      if (lineEnd > at && bytes[lineEnd - 1] === CR) lineEnd--;
      let colon = at;
      while (colon < lineEnd && TOKEN_BYTES[bytes[colon]] === 1) colon++;
      if (colon === at || colon === lineEnd || bytes[colon] !== COLON) {
        const line = JSON.stringify(latin1Text(bytes, at, Math.min(lineEnd, at + 80)));
        throw new Http1ProtocolError(`malformed header line ${line}`);
      }
      this.#fields.push(at, colon, lineEnd);
      at = next;
    }
  }

  /** The value of the field `name` (lower case), or `null` when it is absent. */
  get(name: string): string | null {
    const bytes = this.#bytes;
    const fields = this.#fields;
    let value: string | null = null;
    for (let i = 0; i < fields.length; i += 3) {
      const start = fields[i];
      if (fields[i + 1] - start !== name.length || !sameName(bytes, start, name)) continue;
      let from = fields[i + 1] + 1;
      let to = fields[i + 2];
      while (from < to && (bytes[from] === SPACE || bytes[from] === TAB)) from++;
      while (to > from && (bytes[to - 1] === SPACE || bytes[to - 1] === TAB)) to--;
      const text = latin1Text(bytes, from, to);
      value = value === null ? text : `${value}, ${text}`;
    }
    return value;
  }
}

/** Whether the field name at `bytes[start…]` is `name` (lower case), ignoring ASCII case. */
function sameName(bytes: Uint8Array, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    let byte = bytes[start + i];
    if (byte >= 65 && byte <= 90) byte += 32;
    if (byte !== name.charCodeAt(i)) return false;
  }
  return true;
}
