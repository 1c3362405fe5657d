/**
 * Splits a byte stream into lines without holding more than one line (and one
 * chunk) in memory. `\n` and `\r\n` endings, a missing final newline and a UTF-8
 * byte order mark are all accepted.
 *
 * Speed: the lines that end in one chunk are decoded with one `TextDecoder`
 * call, split as a string and handed over as one array, so the cost of an
 * await is paid per chunk, not per line. A chunk that is not valid UTF-8 is
 * split byte by byte instead, so the bad line is reported exactly.
 *
 * @module
 */

/** One physical line of input. */
export interface InputLine {
  /** 1-based line number. */
  line: number;
  /** The decoded text without its line ending; null when `problem` is set. */
  text: string | null;
  /** Why the line could not be read. */
  problem?: "too_long" | "invalid_utf8";
}

import { concatBytes } from "../storage/concat_bytes.ts";

const NEWLINE = 10;
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  return a.length === 0 ? b : concatBytes([a, b], a.length + b.length);
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
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let lineNumber = 0;
  /** Bytes of the unfinished last line. */
  let carry: Uint8Array = EMPTY;
  /** The unfinished line is already too long: its bytes are dropped until it ends. */
  let skipping = false;
  let group: InputLine[] = [];

  const push = (text: string) => {
    lineNumber++;
    let line = text.endsWith("\r") ? text.slice(0, -1) : text;
    if (lineNumber === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    const tooLong = line.length > maxLineBytes ||
      (line.length * 3 > maxLineBytes && encoder.encode(line).length > maxLineBytes);
    group.push(tooLong ? { line: lineNumber, text: null, problem: "too_long" } : { line: lineNumber, text: line });
  };
  const pushProblem = (problem: "too_long" | "invalid_utf8") => {
    lineNumber++;
    group.push({ line: lineNumber, text: null, problem });
  };

  /** Adds the lines of `region` (complete lines, each ending in \n). */
  const splitRegion = (region: Uint8Array) => {
    let text: string | null;
    try {
      text = decoder.decode(region);
    } catch {
      text = null;
    }
    if (text !== null) {
      let start = 0;
      for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
        push(text.slice(start, end));
        start = end + 1;
      }
      return;
    }
    let start = 0;
    for (let end = region.indexOf(NEWLINE); end >= 0; end = region.indexOf(NEWLINE, start)) {
      const bytes = region.subarray(start, end);
      start = end + 1;
      if (bytes.length > maxLineBytes) {
        pushProblem("too_long");
        continue;
      }
      try {
        push(decoder.decode(bytes));
      } catch {
        pushProblem("invalid_utf8");
      }
    }
  };

  const reader = stream.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      let chunk = r.value;
      if (skipping) {
        const end = chunk.indexOf(NEWLINE);
        if (end < 0) continue;
        pushProblem("too_long");
        skipping = false;
        chunk = chunk.subarray(end + 1);
      }
      const first = chunk.indexOf(NEWLINE);
      if (first < 0) {
        // No line ends in this chunk: it all belongs to the unfinished line.
        if (carry.length + chunk.length > maxLineBytes) {
          skipping = true;
          carry = EMPTY;
        } else {
          carry = concat(carry, chunk.slice());
        }
        continue;
      }
      if (carry.length + first > maxLineBytes) {
        // The carried line ends here but is too long: report it and go on after it.
        pushProblem("too_long");
        carry = EMPTY;
        chunk = chunk.subarray(first + 1);
      }
      const last = chunk.lastIndexOf(NEWLINE);
      if (last >= 0) splitRegion(concat(carry, chunk.subarray(0, last + 1)));
      // Copy the remainder: the chunk's buffer may be reused by the source.
      carry = last >= 0 ? chunk.slice(last + 1) : concat(carry, chunk.slice());
      if (carry.length > maxLineBytes) {
        skipping = true;
        carry = EMPTY;
      }
      if (group.length) {
        yield group;
        group = [];
      }
    }
    if (skipping) pushProblem("too_long");
    else if (carry.length > 0) splitRegion(concat(carry, new Uint8Array([NEWLINE])));
    if (group.length) yield group;
  } finally {
    reader.releaseLock();
    await stream.cancel().catch(() => {});
  }
}
