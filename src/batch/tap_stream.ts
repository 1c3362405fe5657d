/**
 * Looking at every chunk of a byte stream as it is read, without copying it.
 *
 * @module
 */

/**
 * A stream of `source`'s chunks that shows each one to `see` before passing it
 * on. It reads `source` only when it is read itself (nothing is buffered ahead),
 * so the consumer's back-pressure reaches the source. When `see` throws, the
 * stream errors and `source` is cancelled.
 *
 * A `TransformStream` does the same with a writable side, a readable side and
 * a pipe between them; on an upload's thousands of chunks that machinery cost
 * Node more than the scan it fed.
 *
 * @example
 * ```ts
 * let bytes = 0;
 * const counted = tapStream(upload, (chunk) => void (bytes += chunk.length));
 * await storage.blobs.put("files/x", counted);
 * ```
 */
export function tapStream(
  source: ReadableStream<Uint8Array>,
  see: (chunk: Uint8Array) => void | Promise<void>,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      try {
        await see(value);
      } catch (error) {
        await reader.cancel(error).catch(() => {});
        throw error;
      }
      controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
