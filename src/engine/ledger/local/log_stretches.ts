/**
 * Stretches of logs read one after the other: a batch's results recorded so
 * far, from where a reader got to up to each log's durable length (bytes past
 * it may not survive a crash, and would then be written again otherwise).
 *
 * @module
 */
import { iteratorStream } from "../../../shared/iterator_stream.ts";
import type { Storage } from "../../../storage/types.ts";

/** The bytes of logs between two offsets each, one log after the other. */
export function logStretches(storage: Storage, parts: readonly { key: string; from: number; to: number }[]): ReadableStream<Uint8Array> {
  return iteratorStream((async function* () {
    for (const part of parts) {
      let left = part.to - part.from;
      if (left <= 0) continue;
      const reader = (await storage.logs.read(part.key, part.from)).getReader();
      try {
        while (left > 0) {
          const { done, value } = await reader.read();
          if (done) break;
          const chunk = value.length > left ? value.subarray(0, left) : value;
          left -= chunk.length;
          yield chunk;
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
    }
  })());
}
