/**
 * Stretches of logs read one after the other: a batch's results recorded so
 * far, from where a reader got to up to each log's durable length (bytes past
 * it may not survive a crash, and would then be written again otherwise).
 *
 * @module
 */
import type { Storage } from "../../../storage/types.ts";

/** The bytes of logs between two offsets each, one log after the other. */
export function logStretches(storage: Storage, parts: readonly { key: string; from: number; to: number }[]): ReadableStream<Uint8Array> {
  let index = 0;
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let left = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (!reader) {
          const part = parts[index++];
          if (!part) return controller.close();
          if (part.to <= part.from) continue;
          reader = (await storage.logs.read(part.key, part.from)).getReader();
          left = part.to - part.from;
        }
        const { done, value } = await reader.read();
        if (done || left <= 0) {
          await reader.cancel().catch(() => {});
          reader = null;
          continue;
        }
        const chunk = value.length > left ? value.subarray(0, left) : value;
        left -= chunk.length;
        if (left <= 0) {
          await reader.cancel().catch(() => {});
          reader = null;
        }
        return controller.enqueue(chunk);
      }
    },
    async cancel() {
      await reader?.cancel().catch(() => {});
    },
  }, { highWaterMark: 0 });
}
