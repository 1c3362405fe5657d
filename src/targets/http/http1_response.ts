/**
 * An incremental parser of one HTTP/1.1 response (RFC 9112): status line,
 * header fields, and a body framed by `Content-Length`, by chunked transfer
 * coding, or by the end of the connection. Interim (1xx) responses are skipped.
 *
 * It only frames the message; what the body means is the caller's business.
 *
 * @module
 */
import { concatBytes } from "../../shared/concat_bytes.ts";
import { ConnectionClosedError, Http1Headers, Http1ProtocolError, latin1Text } from "./http1_headers.ts";
import { ResponseTooLargeError } from "./transport_errors.ts";

export { ConnectionClosedError, Http1Headers, Http1ProtocolError };

/** A response read whole. */
export interface Http1Response {
  status: number;
  headers: Http1Headers;
  body: Uint8Array;
  /** Whether the connection may carry another request (keep-alive, length-delimited, nothing extra received). */
  reusable: boolean;
}

/** Largest status line plus header section accepted (Node's default limit is 16 KiB). */
const MAX_HEAD_BYTES = 64 * 1024;
/** Largest chunk-size line (hex digits, extensions) accepted. */
const MAX_CHUNK_LINE_BYTES = 4096;
const CR = 13;
const LF = 10;

type State = "head" | "length" | "chunk-size" | "chunk-data" | "chunk-end" | "trailers" | "until-close" | "done";

const DIGITS = /^\d{1,15}$/;
/** `HTTP/1.` */
const VERSION_PREFIX = [72, 84, 84, 80, 47, 49, 46];
const EMPTY = new Uint8Array(0);

/**
 * Parses one response from the bytes of a connection, as they arrive.
 *
 * @example
 * ```ts
 * const parser = new Http1ResponseParser();
 * socket.on("data", (chunk) => {
 *   const response = parser.push(chunk);
 *   if (response) console.log(response.status, new TextDecoder().decode(response.body));
 * });
 * socket.on("end", () => parser.end()); // a body that runs to the end of the connection
 * ```
 */
export class Http1ResponseParser {
  #state: State = "head";
  /** Bytes received and not yet parsed. */
  #pending: Uint8Array = EMPTY;
  #status = 0;
  #headers: Http1Headers | null = null;
  #keepAlive = true;
  #remaining = 0;
  #body: Uint8Array[] = [];
  #bodyBytes = 0;
  readonly #maxBodyBytes: number;

  /** @param maxBodyBytes a longer body throws {@link ResponseTooLargeError} as soon as it passes the limit */
  constructor(maxBodyBytes: number = Infinity) {
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** Whether any byte of the response has arrived. */
  get started(): boolean {
    return this.#state !== "head" || this.#pending.length > 0;
  }

  /**
   * Takes the next bytes of the connection. Returns the response once it is
   * complete (bytes past its end make it not reusable), `null` while more are
   * needed. Throws {@link Http1ProtocolError} on a malformed response.
   */
  push(chunk: Uint8Array): Http1Response | null {
    if (this.#done()) throw new Http1ProtocolError("bytes arrived after the response ended");
    const pending = this.#pending;
    const bytes = pending.length ? concatBytes([pending, chunk], pending.length + chunk.length) : chunk;
    this.#pending = EMPTY;
    let at = 0;
    while (!this.#done()) {
      const next = this.#step(bytes, at);
      if (next < 0) {
        this.#pending = bytes.subarray(at);
        return null;
      }
      at = next;
      if (at === bytes.length && !this.#done()) return null;
    }
    return this.#finish(at < bytes.length);
  }

  #done(): boolean {
    return this.#state === "done";
  }

  /** Parses what it can from `at` on; returns where it stopped, or -1 when it needs more bytes first. */
  #step(bytes: Uint8Array, at: number): number {
    switch (this.#state) {
      case "head": {
        const end = headEnd(bytes, at);
        if (end === null) {
          if (bytes.length - at > MAX_HEAD_BYTES) throw new Http1ProtocolError("the response head is larger than 64 KiB");
          return -1;
        }
        this.#readHead(bytes, at, end.head);
        return end.body;
      }
      case "length":
      case "chunk-data": {
        const take = Math.min(this.#remaining, bytes.length - at);
        this.#keep(bytes.subarray(at, at + take));
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = this.#state === "length" ? "done" : "chunk-end";
        return at + take;
      }
      case "chunk-size": {
        const lineEnd = bytes.indexOf(LF, at);
        if (lineEnd < 0) {
          if (bytes.length - at > MAX_CHUNK_LINE_BYTES) throw new Http1ProtocolError("a chunk-size line is too long");
          return -1;
        }
        const line = latin1Text(bytes, at, lineEnd).replace(/\r$/, "");
        const size = /^([0-9a-fA-F]{1,12})[ \t]*(;.*)?$/.exec(line);
        if (!size) throw new Http1ProtocolError(`malformed chunk size ${JSON.stringify(line.slice(0, 40))}`);
        this.#remaining = parseInt(size[1], 16);
        this.#state = this.#remaining === 0 ? "trailers" : "chunk-data";
        return lineEnd + 1;
      }
      case "chunk-end": {
        if (bytes.length - at < 2) return -1;
        if (bytes[at] !== CR || bytes[at + 1] !== LF) throw new Http1ProtocolError("a chunk does not end with CRLF");
        this.#state = "chunk-size";
        return at + 2;
      }
      case "trailers": {
        // The trailer section ends at an empty line; its fields are not used.
        const lineEnd = bytes.indexOf(LF, at);
        if (lineEnd < 0) {
          if (bytes.length - at > MAX_HEAD_BYTES) throw new Http1ProtocolError("the trailer section is too long");
          return -1;
        }
        if (lineEnd === at || (lineEnd === at + 1 && bytes[at] === CR)) this.#state = "done";
        return lineEnd + 1;
      }
      case "until-close":
        this.#keep(bytes.subarray(at));
        return bytes.length;
      case "done":
        return at;
    }
  }

  /**
   * The connection ended. Returns the response when its body runs to the end
   * of the connection; throws {@link Http1ProtocolError} when it is incomplete.
   */
  end(): Http1Response {
    if (this.#state === "until-close") {
      this.#state = "done";
      return this.#finish(false);
    }
    throw new ConnectionClosedError(
      this.started ? "the connection closed before the response ended" : "the connection closed before any response",
    );
  }

  #keep(part: Uint8Array): void {
    this.#bodyBytes += part.length;
    if (this.#bodyBytes > this.#maxBodyBytes) throw new ResponseTooLargeError(this.#maxBodyBytes);
    this.#body.push(part);
  }

  #readHead(bytes: Uint8Array, start: number, end: number): void {
    let lineEnd = bytes.indexOf(LF, start);
    if (lineEnd < 0 || lineEnd > end) lineEnd = end;
    const status = statusOf(bytes, start, lineEnd > start && bytes[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd);
    const http11 = bytes[start + 7] === 49;
    const headers = new Http1Headers(bytes, Math.min(lineEnd + 1, end), end);
    if (status < 200) {
      if (status === 101) throw new Http1ProtocolError("the server switched protocols");
      return; // An interim response (100 Continue, 103 Early Hints): the final one follows.
    }
    this.#status = status;
    this.#headers = headers;
    const connection = headers.get("connection");
    this.#keepAlive = http11
      ? connection === null || !hasToken(connection, "close")
      : connection !== null && hasToken(connection, "keep-alive");
    const transferEncoding = headers.get("transfer-encoding");
    const contentLength = headers.get("content-length");
    if (status === 204 || status === 304) {
      this.#state = "done";
    } else if (transferEncoding !== null) {
      // With both, Transfer-Encoding wins and the connection must not be reused (RFC 9112 §6.3).
      if (contentLength !== null) this.#keepAlive = false;
      if (/(?:^|,)[ \t]*chunked[ \t]*$/i.test(transferEncoding)) this.#state = "chunk-size";
      else {
        this.#keepAlive = false;
        this.#state = "until-close";
      }
    } else if (contentLength !== null) {
      this.#remaining = contentLengthOf(contentLength);
      if (this.#remaining > this.#maxBodyBytes) throw new ResponseTooLargeError(this.#maxBodyBytes);
      this.#state = this.#remaining === 0 ? "done" : "length";
    } else {
      this.#keepAlive = false;
      this.#state = "until-close";
    }
  }

  #finish(extraBytes: boolean): Http1Response {
    this.#state = "done";
    const parts = this.#body;
    const body = parts.length === 1 ? parts[0] : concatBytes(parts, parts.reduce((sum, part) => sum + part.length, 0));
    this.#body = [];
    return { status: this.#status, headers: this.#headers!, body, reusable: this.#keepAlive && !extraBytes };
  }
}

/**
 * Where the head that starts at `from` ends: `head` is the end of its last
 * field line, `body` the first byte after the blank line (CRLF or bare LF line
 * ends). `null` while the blank line has not arrived.
 */
function headEnd(bytes: Uint8Array, from: number): { head: number; body: number } | null {
  for (let at = bytes.indexOf(LF, from); at >= 0; at = bytes.indexOf(LF, at + 1)) {
    const lineEnd = at > from && bytes[at - 1] === CR ? at - 1 : at;
    if (bytes[at + 1] === LF) return { head: lineEnd, body: at + 2 };
    if (bytes[at + 1] === CR && bytes[at + 2] === LF) return { head: lineEnd, body: at + 3 };
  }
  return null;
}

/** The status code of the status line `bytes[start, end)` (`HTTP/1.x NNN reason`). */
function statusOf(bytes: Uint8Array, start: number, end: number): number {
  const digit = (at: number) => bytes[at] >= 48 && bytes[at] <= 57;
  const wellFormed = end - start >= 12 && VERSION_PREFIX.every((byte, i) => bytes[start + i] === byte) &&
    (bytes[start + 7] === 48 || bytes[start + 7] === 49) && bytes[start + 8] === 32 &&
    digit(start + 9) && digit(start + 10) && digit(start + 11) && (end === start + 12 || bytes[start + 12] === 32);
  if (!wellFormed) throw new Http1ProtocolError(`malformed status line ${JSON.stringify(latin1Text(bytes, start, Math.min(end, start + 80)))}`);
  return (bytes[start + 9] - 48) * 100 + (bytes[start + 10] - 48) * 10 + (bytes[start + 11] - 48);
}

/** Whether a comma-separated field value lists `token` (case-insensitive). */
function hasToken(value: string, token: string): boolean {
  return value.toLowerCase().split(",").some((item) => item.trim() === token);
}

/** A `Content-Length` value; repeated identical values are one (RFC 9110 §8.6). */
function contentLengthOf(value: string): number {
  if (DIGITS.test(value)) return Number(value);
  const values = new Set(value.split(",").map((item) => item.trim()));
  const [first] = values;
  if (values.size !== 1 || !DIGITS.test(first)) {
    throw new Http1ProtocolError(`invalid content-length ${JSON.stringify(value.slice(0, 40))}`);
  }
  return Number(first);
}
