/**
 * How a blob put writes to its file on this runtime: how many writes it keeps
 * in progress, and whether they are vectored.
 *
 * @module
 */
import { currentRuntime } from "./detect.ts";

/**
 * Writes to one file in progress at once. Three let an upload on Node go on
 * while the disk takes the last megabytes (its wait for the disk fell from
 * ~140 to ~20 ms per 200 MB). On Deno and Bun the same change made the
 * server's resident memory grow with the upload (Deno 112 → 205 MiB, Bun
 * ~125 → ~150 MiB at the peak of a 200 MB batch, measured; in-process puts did
 * not grow, so it is the faster-arriving request body's buffers, freed faster
 * than their allocators give memory back), so they keep one.
 *
 * @example
 * ```ts
 * while (writes.size >= WRITES_IN_FLIGHT_PER_FILE) await Promise.race(writes);
 * ```
 */
export const WRITES_IN_FLIGHT_PER_FILE: number = currentRuntime() === "node" ? 3 : 1;

/**
 * Whether a put's gathered chunks go to the file as one vectored write
 * (`writev`). Deno's `node:fs` runs `writev` on the main thread: measured over
 * 200 writes of 1 MiB, 140–370 ms of main-thread CPU, against 60–80 ms for
 * joining the chunks and one positional `write` (a `write` also runs on the
 * main thread there, but costs less). Node and Bun hand `writev` to their
 * thread pools, so they keep it and skip the copy.
 *
 * @example
 * ```ts
 * const parts = VECTORED_WRITES ? chunks : [concatBytes(chunks, total)];
 * ```
 */
export const VECTORED_WRITES: boolean = currentRuntime() !== "deno";
