/**
 * A request body that fails when its client stops sending: the upload route's
 * idle timeout, on every runtime (Deno's server has none of its own).
 *
 * @module
 */
import type { Clock, ClockTimer } from "../shared/clock.ts";
import { RequestError } from "./request_error.ts";

/**
 * `body`, failing with a `request_timeout` {@link RequestError} when the next
 * chunk takes longer than `idleMs` to arrive. Only time spent waiting for the
 * client counts, never time the server spends on the chunks it has. One timer
 * serves the whole body, re-armed only when it fires.
 *
 * @example
 * ```ts
 * for await (const chunk of limitIdle(body, 120_000, systemClock)) write(chunk);
 * ```
 */
export function limitIdle(body: AsyncIterable<Uint8Array>, idleMs: number, clock: Clock): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const inner = chunksOf(body);
      /** When the current wait for a chunk began, or null while the server works on what it has. */
      let waitingSince: number | null = null;
      /** Fails the current wait. (Not a `Promise.race` with one long-lived promise: each race would leave a reaction on it holding its chunk.) */
      let failWait: ((error: RequestError) => void) | null = null;
      let timer: ClockTimer | undefined;
      const check = () => {
        const waited = waitingSince === null ? 0 : clock.monotonic() - waitingSince;
        if (waited >= idleMs && failWait) {
          failWait(new RequestError("request_timeout", `No part of the request body arrived for ${Math.round(idleMs / 1000)} s.`));
        } else {
          timer = clock.setTimeout(check, idleMs - waited);
        }
      };
      timer = clock.setTimeout(check, idleMs);
      const stop = () => clock.clearTimeout(timer);
      return {
        async next() {
          waitingSince = clock.monotonic();
          try {
            const result = await new Promise<IteratorResult<Uint8Array>>((resolve, reject) => {
              failWait = reject;
              inner.next().then(resolve, reject);
            });
            if (result.done) stop();
            return result;
          } catch (error) {
            stop();
            await inner.return().catch(() => {});
            throw error;
          } finally {
            waitingSince = null;
            failWait = null;
          }
        },
        async return(value?: unknown) {
          stop();
          await inner.return();
          return { done: true, value };
        },
      };
    },
  };
}

/**
 * The chunks of `body` with a `return` that stops it at once. A Web stream is
 * read through its reader: its async iterator's `return` waits for a pending
 * read, which a stalled client never ends; `cancel` ends it.
 */
function chunksOf(body: AsyncIterable<Uint8Array>): {
  next(): Promise<IteratorResult<Uint8Array>>;
  return(): Promise<unknown>;
} {
  if (body instanceof ReadableStream) {
    const reader = (body as ReadableStream<Uint8Array>).getReader();
    return {
      next: async () => {
        const { done, value } = await reader.read();
        return done ? { done: true, value: undefined } : { done: false, value };
      },
      return: () => reader.cancel(),
    };
  }
  const iterator = body[Symbol.asyncIterator]();
  return { next: () => iterator.next(), return: () => iterator.return?.() ?? Promise.resolve() };
}
