/**
 * Splits bytes into lines without holding more than one line (and one chunk)
 * in memory. `\n` and `\r\n` endings, a missing final newline and a UTF-8 byte
 * order mark are all accepted.
 *
 * Speed: the lines that end in one chunk are decoded with one `decodeUtf8`
 * call, split as a string and handed over as one array, so the cost of an
 * await is paid per chunk, not per line. A chunk that is not valid UTF-8 is
 * split byte by byte instead, so the bad line is reported exactly. A splitter
 * given a {@link LineValueReader} decodes nothing the reader can read from
 * the bytes itself (batch validation reads its few fields that way).
 *
 * @module
 */
import { decodeUtf8 } from "../../runtime/decode_utf8.ts";
import { indexOfByte, lastIndexOfByte } from "../../runtime/find_byte.ts";

/** One physical line of input. */
export interface InputLine {
  /** 1-based line number. */
  line: number;
  /** The decoded text without its line ending; null when `problem` is set. */
  text: string | null;
  /** Why the line could not be read. */
  problem?: "too_long" | "invalid_utf8";
  /** What the splitter's {@link LineValueReader} read from the line's bytes; `text` is then "". */
  value?: unknown;
}

/** Reads lines' values straight from their bytes, for a splitter whose user wants values rather than text. */
export interface LineValueReader {
  /**
   * Reads the line that starts at `bytes[start]` and ends at the next line
   * feed before `limit`; undefined leaves the line to be decoded into `text`
   * as usual.
   */
  read(bytes: Uint8Array, start: number, limit: number): unknown;
  /** The index of the line feed that ended the line, after a `read` that gave a value. */
  readonly lineEnd: number;
}

const NEWLINE = 10;
/** Most bytes decoded into one string (see `#splitRegions`). */
const DECODE_BYTES = 64 * 1024;
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const LINE_FEED = new Uint8Array([NEWLINE]);
/** The carry buffer's first size: most lines fit. */
const MIN_CARRY_BYTES = 16 * 1024;

/**
 * Whether a line is empty or only white space (cheap for the usual line that starts with `{`).
 *
 * @example
 * ```ts
 * isBlankLine("  "); // true
 * isBlankLine('{"a":1}'); // false
 * ```
 */
export function isBlankLine(text: string): boolean {
  return text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === "");
}

/**
 * An incremental line splitter: feed it chunks, get the lines they complete.
 *
 * @example
 * ```ts
 * const splitter = new LineSplitter();
 * splitter.push(new TextEncoder().encode("a\nb")); // [{ line: 1, text: "a" }]
 * splitter.end(); // [{ line: 2, text: "b" }]
 * ```
 */
export class LineSplitter {
  readonly maxLineBytes: number;
  #lineNumber = 0;
  /**
   * The unfinished last line: the first `#carryLength` bytes of `#carryBuffer`.
   * The buffer is kept from line to line (it grows to the longest line seen, at
   * most `maxLineBytes` + 1), as a fresh array per chunk boundary cost two
   * allocations and copies there. Safe because no line handed out keeps a view
   * of the bytes it was read from: lines are decoded text or read values.
   */
  #carryBuffer: Uint8Array = EMPTY;
  #carryLength = 0;
  /** The unfinished line is already too long: its bytes are dropped until it ends. */
  #skipping = false;
  #out: InputLine[] = [];
  readonly #readValue: LineValueReader | undefined;

  /**
   * @param maxLineBytes lines longer than this are reported as `too_long`, never buffered whole.
   * @param readValue reads lines from their bytes; those it reads come with a `value` instead of decoded text.
   */
  constructor(maxLineBytes: number = 16 * 1024 * 1024, readValue?: LineValueReader) {
    this.maxLineBytes = maxLineBytes;
    this.#readValue = readValue;
  }

  /** Takes the next chunk (which may be reused by the caller afterwards); returns the lines it completes. */
  push(input: Uint8Array): InputLine[] {
    let chunk = input;
    if (this.#skipping) {
      const end = indexOfByte(chunk, NEWLINE, 0);
      if (end < 0) return this.#take();
      this.#problem("too_long");
      this.#skipping = false;
      chunk = chunk.subarray(end + 1);
    }
    let first = indexOfByte(chunk, NEWLINE, 0);
    if (first < 0) {
      // No line ends in this chunk: it all belongs to the unfinished line.
      this.#extendCarry(chunk);
      return this.#take();
    }
    if (this.#carryLength + first > this.maxLineBytes) {
      // The carried line ends here but is too long: report it and go on after it.
      this.#problem("too_long");
      this.#carryLength = 0;
      chunk = chunk.subarray(first + 1);
      first = indexOfByte(chunk, NEWLINE, 0);
    }
    const last = lastIndexOfByte(chunk, NEWLINE);
    if (last >= 0) {
      // The carried bytes join only the chunk's first line; the rest is decoded in place, not copied.
      this.#splitRegion(this.#withCarry(chunk.subarray(0, first + 1)));
      if (last > first) this.#splitRegions(chunk.subarray(first + 1, last + 1));
    }
    this.#extendCarry(chunk.subarray(last + 1));
    return this.#take();
  }

  /** Ends the input; returns the last line when it had no newline. */
  end(): InputLine[] {
    if (this.#skipping) this.#problem("too_long");
    else if (this.#carryLength > 0) this.#splitRegion(this.#withCarry(LINE_FEED));
    this.#carryLength = 0;
    this.#skipping = false;
    return this.#take();
  }

  #take(): InputLine[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #extendCarry(bytes: Uint8Array) {
    if (bytes.length === 0) return;
    if (this.#carryLength + bytes.length > this.maxLineBytes) {
      this.#skipping = true;
      this.#carryLength = 0;
    } else {
      this.#appendToCarry(bytes);
    }
  }

  /** The carried bytes followed by `end` (the rest of their line), then no carry: `end` itself when nothing is carried. */
  #withCarry(end: Uint8Array): Uint8Array {
    if (this.#carryLength === 0) return end;
    this.#appendToCarry(end);
    const line = this.#carryBuffer.subarray(0, this.#carryLength);
    this.#carryLength = 0;
    return line;
  }

  /** Copies `bytes` after the carried ones (the caller's buffer may be reused). */
  #appendToCarry(bytes: Uint8Array) {
    const length = this.#carryLength + bytes.length;
    if (length > this.#carryBuffer.length) {
      const doubled = Math.min(this.#carryBuffer.length * 2, this.maxLineBytes + 1);
      const grown = new Uint8Array(Math.max(length, doubled, MIN_CARRY_BYTES));
      grown.set(this.#carryBuffer.subarray(0, this.#carryLength));
      this.#carryBuffer = grown;
    }
    this.#carryBuffer.set(bytes, this.#carryLength);
    this.#carryLength = length;
  }

  #push(text: string) {
    this.#lineNumber++;
    let line = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (this.#lineNumber === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    const max = this.maxLineBytes;
    const tooLong = line.length > max || (line.length * 3 > max && encoder.encode(line).length > max);
    this.#out.push(
      tooLong ? { line: this.#lineNumber, text: null, problem: "too_long" } : { line: this.#lineNumber, text: line },
    );
  }

  #problem(problem: "too_long" | "invalid_utf8") {
    this.#lineNumber++;
    this.#out.push({ line: this.#lineNumber, text: null, problem });
  }

  /**
   * Adds the lines of `region` (complete lines, each ending in \n), decoded in
   * pieces of about {@link DECODE_BYTES}: a string that large is a young object,
   * collected cheaply, where a string of a whole large chunk would go to the
   * large-object space and stay until a full collection (memory then grows
   * with the file, not with the chunk).
   */
  #splitRegions(region: Uint8Array) {
    // Lines read from their bytes are not decoded: the region needs no pieces.
    if (this.#readValue) return this.#readRegion(region, this.#readValue);
    for (let start = 0; start < region.length;) {
      let end = region.length;
      if (end - start > DECODE_BYTES) {
        end = lastIndexOfByte(region, NEWLINE, start + DECODE_BYTES) + 1;
        if (end <= start) end = indexOfByte(region, NEWLINE, start + DECODE_BYTES) + 1;
      }
      this.#splitRegion(region.subarray(start, end));
      start = end;
    }
  }

  /** Adds the lines of `region` (complete lines, each ending in \n). */
  #splitRegion(region: Uint8Array) {
    if (this.#readValue) return this.#readRegion(region, this.#readValue);
    let text: string | null;
    try {
      text = decodeUtf8(region);
    } catch {
      text = null;
    }
    if (text !== null) {
      let start = 0;
      for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
        this.#push(text.slice(start, end));
        start = end + 1;
      }
      return;
    }
    let start = 0;
    for (let end = indexOfByte(region, NEWLINE, 0); end >= 0; end = indexOfByte(region, NEWLINE, start)) {
      this.#decodeLine(region.subarray(start, end));
      start = end + 1;
    }
  }

  /** Adds the lines of `region` (complete lines), each read by `reader` or else decoded. */
  #readRegion(region: Uint8Array, reader: LineValueReader) {
    for (let start = 0; start < region.length;) {
      // A line longer than the limit is not read: it has no line feed within it.
      const value = reader.read(region, start, Math.min(region.length, start + this.maxLineBytes + 1));
      let end: number;
      if (value === undefined) {
        end = indexOfByte(region, NEWLINE, start);
        this.#decodeLine(region.subarray(start, end));
      } else {
        end = reader.lineEnd;
        this.#lineNumber++;
        this.#out.push({ line: this.#lineNumber, text: "", value });
      }
      start = end + 1;
    }
  }

  /** Adds one line (without its line feed) decoded on its own, so that a bad one is reported exactly. */
  #decodeLine(bytes: Uint8Array) {
    if (bytes.length > this.maxLineBytes) {
      this.#problem("too_long");
      return;
    }
    try {
      this.#push(decodeUtf8(bytes));
    } catch {
      this.#problem("invalid_utf8");
    }
  }
}

/**
 * Reads lines from a stream, in groups: the lines that end in one chunk of the
 * stream come as one array.
 *
 * @param maxLineBytes lines longer than this are reported as `too_long` and skipped
 *   without being buffered.
 * @example
 * ```ts
 * for await (const group of readLines(file)) {
 *   for (const { line, text } of group) console.log(line, text);
 * }
 * ```
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxLineBytes: number = 16 * 1024 * 1024,
): AsyncGenerator<InputLine[]> {
  const splitter = new LineSplitter(maxLineBytes);
  const reader = stream.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const group = splitter.push(r.value);
      if (group.length) yield group;
    }
    const last = splitter.end();
    if (last.length) yield last;
  } finally {
    reader.releaseLock();
    await stream.cancel().catch(() => {});
  }
}
