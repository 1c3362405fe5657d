/**
 * A byte stream pulled from an async iterator: one item per pull, nothing
 * read ahead (`highWaterMark: 0`), so memory holds one item however slowly
 * the stream is read; cancelling it returns the iterator (its `finally` runs).
 *
 * @module
 */

/**
 * @example
 * ```ts
 * return new Response(iteratorStream((async function* () { yield new TextEncoder().encode("a\n"); })()));
 * ```
 */
export function iteratorStream(iterator: AsyncGenerator<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (error) {
        controller.error(error);
      }
    },
    async cancel() {
      await iterator.return(undefined);
    },
  }, { highWaterMark: 0 });
}
