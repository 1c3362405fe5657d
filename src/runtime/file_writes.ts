/**
 * How many writes to one file a blob put keeps in progress on this runtime.
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
