/**
 * Writes a batch's result records to its logs in groups: while one append to a
 * log is being made durable, the results that arrive queue up and go together
 * in the next one. The storage's group commit already shares one fsync among
 * concurrent appends; grouping here also shares the per-append work (key
 * checks, encoding, bookkeeping), which dominates once results arrive faster
 * than a disk flush.
 *
 * @module
 */
import type { Storage } from "../storage/types.ts";
import type { BatchProgress, LogKind } from "./progress.ts";
import { errorLogKey, outputLogKey } from "./storage_keys.ts";

/** One result to write. */
export interface PendingResult {
  line: number;
  record: string;
  usage?: unknown;
}

interface Waiting extends PendingResult {
  resolve(): void;
  reject(error: unknown): void;
}

/** A batch's writer of results; `write` resolves once the result is durable and counted. */
export interface ResultWriter {
  write(kind: LogKind, results: PendingResult[]): Promise<void>;
}

/**
 * Creates the result writer of one batch.
 *
 * @example
 * ```ts
 * const writer = createResultWriter(storage, batchId, progress);
 * await writer.write("output", [{ line: 3, record, usage }]);
 * ```
 */
export function createResultWriter(storage: Storage, batchId: string, progress: BatchProgress): ResultWriter {
  const queues: Record<LogKind, { waiting: Waiting[]; flushing: boolean }> = {
    output: { waiting: [], flushing: false },
    errors: { waiting: [], flushing: false },
  };
  const keys: Record<LogKind, string> = { output: outputLogKey(batchId), errors: errorLogKey(batchId) };

  const flush = async (kind: LogKind) => {
    const queue = queues[kind];
    queue.flushing = true;
    while (queue.waiting.length) {
      const group = queue.waiting.splice(0);
      try {
        const { end } = await storage.logs.append(keys[kind], group.map((result) => result.record));
        for (const result of group) progress.record(result.line, kind, result.usage, end);
        for (const result of group) result.resolve();
      } catch (error) {
        for (const result of group) result.reject(error);
      }
    }
    queue.flushing = false;
  };

  return {
    write(kind, results) {
      const queue = queues[kind];
      const done = Promise.all(results.map((result) =>
        new Promise<void>((resolve, reject) => queue.waiting.push({ ...result, resolve, reject }))
      ));
      if (!queue.flushing) void flush(kind);
      return done.then(() => {});
    },
  };
}
