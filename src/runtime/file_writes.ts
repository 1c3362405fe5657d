/**
 * How a blob put writes to its file on this runtime: how many writes it keeps
 * in progress, and whether they are vectored.
 *
 * @module
 */
import { currentRuntime } from "./detect.ts";

/**
 * Writes to one file in progress at once. Three let an upload on Node go on
 * while the disk takes the last megabytes. On Deno and Bun the same change
 * made the server's memory grow with the upload (the faster-arriving request
 * body's buffers are freed faster than their allocators give memory back), so
 * they keep one (BENCHMARKS.md, tried and rejected).
 *
 * @example
 * ```ts
 * while (writes.size >= WRITES_IN_FLIGHT_PER_FILE) await Promise.race(writes);
 * ```
 */
export const WRITES_IN_FLIGHT_PER_FILE: number = currentRuntime() === "node" ? 3 : 1;

/**
 * Whether a put's gathered chunks go to the file as one vectored write
 * (`writev`). Deno's `node:fs` runs `writev` on the main thread, where joining
 * the chunks for one positional `write` costs it less; Node and Bun hand
 * `writev` to their thread pools, so they keep it and skip the copy.
 *
 * @example
 * ```ts
 * const parts = VECTORED_WRITES ? chunks : [concatBytes(chunks, total)];
 * ```
 */
export const VECTORED_WRITES: boolean = currentRuntime() !== "deno";
