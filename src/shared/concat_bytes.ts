/**
 * Joining byte chunks, shared by the adapters and the line reader.
 *
 * @module
 */

/**
 * Copies `chunks` into one array of `total` bytes (their summed length): the
 * start of `into` when it is given and large enough, a new array otherwise.
 *
 * @example
 * ```ts
 * concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])], 3); // Uint8Array [1, 2, 3]
 * concatBytes(chunks, total, reusedBuffer); // a view of reusedBuffer's first `total` bytes
 * ```
 */
export function concatBytes(chunks: readonly Uint8Array[], total: number, into?: Uint8Array): Uint8Array {
  const out = into !== undefined && into.length >= total ? into.subarray(0, total) : new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
