/**
 * How many writes to one file a blob put keeps in progress on this runtime.
 *
 * @module
 */
import { currentRuntime } from "./detect.ts";

/**
 * Writes to one file in progress at once. Three let an upload on Node and Bun
 * go on while the disk takes the last megabytes (the wait for the disk fell
 * from ~140 to ~20 ms per 200 MB). On Deno the same change made the server's
 * resident memory grow with the upload (112 → 205 MiB over a 200 MB upload,
 * measured; in-process puts did not grow, so it is the HTTP body's buffers
 * freed faster than the allocator returns them), so Deno keeps one.
 *
 * @example
 * ```ts
 * while (writes.size >= WRITES_IN_FLIGHT_PER_FILE) await Promise.race(writes);
 * ```
 */
export const WRITES_IN_FLIGHT_PER_FILE: number = currentRuntime() === "deno" ? 1 : 3;
