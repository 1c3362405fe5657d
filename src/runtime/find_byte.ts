/**
 * The fastest searches for a byte, and for a byte sequence, in a byte array on
 * the current runtime.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { currentRuntime } from "./detect.ts";

const bufferIndexOf = Buffer.prototype.indexOf;
const bufferLastIndexOf = Buffer.prototype.lastIndexOf;

/**
 * Index of the first `byte` in `bytes` at or after `from`, or -1.
 *
 * Node's `Buffer#indexOf` is memchr, far faster than its `Uint8Array#indexOf`;
 * on Deno `Buffer` is written in JavaScript and `Uint8Array#indexOf` is the
 * faster of the two; on Bun both are fast. Multipart uploads search every byte
 * for a boundary, so this matters.
 *
 * @example
 * ```ts
 * indexOfByte(new Uint8Array([1, 13, 10]), 13, 0); // 1
 * ```
 */
export const indexOfByte: (bytes: Uint8Array, byte: number, from: number) => number = currentRuntime() === "node"
  ? (bytes, byte, from) => bufferIndexOf.call(bytes, byte, from)
  : (bytes, byte, from) => bytes.indexOf(byte, from);

/**
 * Index of the last `byte` in `bytes` at or before `from` (by default, the
 * whole array; a negative `from` finds nothing), or -1. On Node this is
 * `Buffer#lastIndexOf` (memrchr), not `Uint8Array#lastIndexOf` (a loop over
 * the elements).
 *
 * @example
 * ```ts
 * lastIndexOfByte(new Uint8Array([10, 1, 10, 2]), 10); // 2
 * lastIndexOfByte(new Uint8Array([10, 1, 10, 2]), 10, 1); // 0
 * ```
 */
export const lastIndexOfByte: (bytes: Uint8Array, byte: number, from?: number) => number = currentRuntime() === "node"
  ? (bytes, byte, from = bytes.length - 1) => (from < 0 ? -1 : bufferLastIndexOf.call(bytes, byte, from))
  : (bytes, byte, from = bytes.length - 1) => (from < 0 ? -1 : bytes.lastIndexOf(byte, from));

/** Finds its needle in a haystack from an index on; -1 when absent. */
export type BytesFinder = (haystack: Uint8Array, from: number) => number;

/**
 * A search that finds each occurrence of `needle`'s first byte with
 * {@link indexOfByte} and compares the rest: fastest where that is memchr.
 *
 * @example
 * ```ts
 * firstByteFinder(new Uint8Array([13, 10]))(new Uint8Array([1, 13, 10]), 0); // 1
 * ```
 */
export function firstByteFinder(needle: Uint8Array): BytesFinder {
  const first = needle[0];
  return (haystack, from) => {
    const last = haystack.length - needle.length;
    for (let i = indexOfByte(haystack, first, from); i !== -1 && i <= last; i = indexOfByte(haystack, first, i + 1)) {
      let j = 1;
      while (j < needle.length && haystack[i + j] === needle[j]) j++;
      if (j === needle.length) return i;
    }
    return -1;
  };
}

/**
 * A Boyer–Moore–Horspool search: it looks at about one byte in every
 * `needle.length` of text that does not match, in JavaScript.
 *
 * @example
 * ```ts
 * horspoolFinder(new Uint8Array([13, 10]))(new Uint8Array([1, 13, 10]), 0); // 1
 * ```
 */
export function horspoolFinder(needle: Uint8Array): BytesFinder {
  const m = needle.length;
  const lastByte = needle[m - 1];
  const shift = new Uint16Array(256).fill(m);
  for (let i = 0; i < m - 1; i++) shift[needle[i]] = m - 1 - i;
  return (haystack, from) => {
    for (let i = Math.max(0, from); i <= haystack.length - m;) {
      const byte = haystack[i + m - 1];
      if (byte === lastByte) {
        let j = m - 2;
        while (j >= 0 && haystack[i + j] === needle[j]) j--;
        if (j < 0) return i;
      }
      i += shift[byte];
    }
    return -1;
  };
}

/**
 * The fastest search for a byte sequence on the current runtime. Multipart
 * uploads search every byte for their boundary: on Node and Bun,
 * {@link firstByteFinder} runs at memory speed; on Deno, whose
 * `Uint8Array#indexOf` is slower, a {@link horspoolFinder} skips most bytes.
 *
 * @example
 * ```ts
 * const findDelimiter = bytesFinder(new TextEncoder().encode("\r\n--boundary"));
 * const at = findDelimiter(chunk, 0);
 * ```
 */
export const bytesFinder: (needle: Uint8Array) => BytesFinder = currentRuntime() === "deno"
  ? horspoolFinder
  : firstByteFinder;
