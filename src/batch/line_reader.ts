/**
 * Splits a byte stream into lines without holding more than one line (and one
 * chunk) in memory. `\n` and `\r\n` endings, a missing final newline and a UTF-8
 * byte order mark are all accepted.
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

const NEWLINE = 10;
const CR = 13;

/**
 * Reads lines from a stream.
 *
 * @param maxLineBytes lines longer than this are reported as `too_long` and skipped
 *   without being buffered.
 * @example
 * ```ts
 * for await (const { line, text } of readLines(file)) console.log(line, text);
 * ```
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  maxLineBytes: number = 16 * 1024 * 1024,
): AsyncGenerator<InputLine> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let parts: Uint8Array[] = [];
  let partBytes = 0;
  let tooLong = false;
  let lineNumber = 0;

  const finish = (): InputLine => {
    lineNumber++;
    if (tooLong) return { line: lineNumber, text: null, problem: "too_long" };
    let bytes = parts.length === 1 ? parts[0] : concat(parts, partBytes);
    if (bytes.length && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1);
    if (lineNumber === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    try {
      return { line: lineNumber, text: decoder.decode(bytes) };
    } catch {
      return { line: lineNumber, text: null, problem: "invalid_utf8" };
    }
  };
  const take = (slice: Uint8Array) => {
    if (tooLong) return;
    partBytes += slice.length;
    if (partBytes > maxLineBytes) {
      tooLong = true;
      parts = [];
    } else if (slice.length) {
      parts.push(slice);
    }
  };
  const reset = () => {
    parts = [];
    partBytes = 0;
    tooLong = false;
  };

  const reader = stream.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      const chunk = r.value;
      let start = 0;
      for (let end = chunk.indexOf(NEWLINE); end >= 0; end = chunk.indexOf(NEWLINE, start)) {
        take(chunk.subarray(start, end));
        yield finish();
        reset();
        start = end + 1;
      }
      // Copy the remainder: the chunk's buffer may be reused by the source.
      if (start < chunk.length) take(chunk.slice(start));
    }
    if (partBytes > 0 || tooLong) yield finish();
  } finally {
    reader.releaseLock();
    await stream.cancel().catch(() => {});
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
