/**
 * The fastest search for one byte in a byte array on the current runtime.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { currentRuntime } from "./detect.ts";

const bufferIndexOf = Buffer.prototype.indexOf;

/**
 * Index of the first `byte` in `bytes` at or after `from`, or -1.
 *
 * Node's `Buffer#indexOf` is memchr (measured here: ~66 GB/s against 1.8 GB/s
 * for `Uint8Array#indexOf` on Node 20); on Deno `Buffer` is written in
 * JavaScript and `Uint8Array#indexOf` is the faster of the two; on Bun both are
 * fast. Multipart uploads search every byte for a boundary, so this matters.
 *
 * @example
 * ```ts
 * indexOfByte(new Uint8Array([1, 13, 10]), 13, 0); // 1
 * ```
 */
export const indexOfByte: (bytes: Uint8Array, byte: number, from: number) => number = currentRuntime() === "node"
  ? (bytes, byte, from) => bufferIndexOf.call(bytes, byte, from)
  : (bytes, byte, from) => bytes.indexOf(byte, from);
