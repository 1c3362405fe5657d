/**
 * Letting the event loop poll I/O, so pending sockets and files are served,
 * at the least cost on the current runtime.
 *
 * @module
 */
import { currentRuntime } from "./detect.ts";

const NOTHING = new Uint8Array(0);

/**
 * One hop through the event loop's I/O phase. Node and Bun: `setImmediate`,
 * which runs right after the I/O poll. Deno: a quick asynchronous operation
 * (the digest of no bytes, needing no permission), whose answer is delivered
 * by the I/O poll; its `setTimeout(0)` waits milliseconds.
 */
const hop: () => Promise<unknown> = currentRuntime() === "deno"
  ? () => crypto.subtle.digest("SHA-256", NOTHING)
  : () => new Promise((resolve) => setImmediate(resolve));

/**
 * Resolves after the event loop has polled I/O twice. One poll is not enough
 * for a busy caller: its continuation resumes in the same round of callbacks
 * as the I/O it let in, so an HTTP request that needs two steps (its head
 * read, then its answer written) would wait for the caller's next yield
 * between them (BENCHMARKS.md, benchmark 6).
 *
 * @example
 * ```ts
 * for (const item of items) {
 *   handle(item);
 *   await letEventLoopRun();
 * }
 * ```
 */
export async function letEventLoopRun(): Promise<void> {
  await hop();
  await hop();
}
