/**
 * The fastest strict UTF-8 decoding on the current runtime.
 *
 * @module
 */
import { Buffer, isAscii } from "node:buffer";
import { currentRuntime } from "./detect.ts";

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 bytes into a string, throwing a `TypeError` on bytes that are
 * not valid UTF-8 (a byte order mark is kept, not stripped).
 *
 * Deno's `TextDecoder` has no ASCII fast path; its native `isAscii` check and
 * a Latin-1 copy (the same string, for ASCII bytes) are several times faster,
 * and JSONL is mostly ASCII. Node's and Bun's `TextDecoder` already have one.
 *
 * @example
 * ```ts
 * decodeUtf8(new TextEncoder().encode("héllo")); // "héllo"
 * decodeUtf8(new Uint8Array([0xff])); // throws TypeError
 * ```
 */
export const decodeUtf8: (bytes: Uint8Array) => string = currentRuntime() === "deno"
  ? (bytes) =>
    isAscii(bytes) ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1") : strict.decode(bytes)
  : (bytes) => strict.decode(bytes);
