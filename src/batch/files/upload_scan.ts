/**
 * The validation scan of a batch input while it uploads: on the scan worker
 * when there is one, else in this thread, inside the put's hasher (each chunk
 * hashed and scanned as the put hands it over, with no stream between).
 *
 * A scan is an optimisation: one that throws is dropped (and reported), and a
 * batch that uses the file is validated in full when it is created.
 *
 * @module
 */
import { DEFAULT_MARK_EVERY, MarkingSha256 } from "../../integrity/digest_marks.ts";
import type { Logger } from "../../shared/logger.ts";
import type { BlobHasher } from "../../storage/types.ts";
import type { OffThreadScanner } from "../input/off_thread_scan.ts";
import { type InputScan, InputScanner, type ValidationLimits } from "../input/validation.ts";

/** An upload's scan: the hasher its put uses, its result once the put is done, and a way to give it up. */
export interface UploadScan {
  hasher: BlobHasher | undefined;
  finish(): Promise<InputScan | undefined> | InputScan | undefined;
  drop(): void;
}

/** No scan (a file that is not a batch input). */
export const NO_SCAN: UploadScan = { hasher: undefined, finish: () => undefined, drop: () => {} };

/**
 * Starts the scan of an upload whose bytes are `content`.
 *
 * @example
 * ```ts
 * const scan = startUploadScan(content, limits, "in.jsonl", scanner, logger);
 * await storage.blobs.put(key, content, { markEvery, hasher: scan.hasher });
 * const found = await scan.finish();
 * ```
 */
export function startUploadScan(
  content: ReadableStream<Uint8Array> | Uint8Array,
  limits: ValidationLimits,
  filename: string,
  offThreadScanner: OffThreadScanner | undefined,
  logger: Logger,
): UploadScan {
  const session = content instanceof Uint8Array ? null : offThreadScanner?.start(limits, DEFAULT_MARK_EVERY);
  if (session) {
    // The worker scans and hashes the bytes the put hands it: this thread only receives and writes.
    return {
      hasher: { update: (chunk) => session.push(chunk), finish: async () => (await session.finish()).digest },
      finish: async () => (await session.finish()).scan,
      drop: () => session.drop(),
    };
  }
  let scanner: InputScanner | null = new InputScanner(limits);
  const dropBrokenScan = (error: unknown) => {
    logger.error(`the upload scan of ${filename} failed and was dropped: ${(error as Error)?.stack ?? error}`);
    scanner = null;
  };
  const hash = new MarkingSha256(DEFAULT_MARK_EVERY);
  return {
    hasher: {
      update: (chunk) => {
        hash.update(chunk);
        try {
          scanner?.push(chunk);
        } catch (error) {
          dropBrokenScan(error);
        }
        return undefined;
      },
      finish: () => Promise.resolve(hash.finish()),
    },
    finish: () => {
      try {
        return scanner?.finish();
      } catch (error) {
        dropBrokenScan(error);
        return undefined;
      }
    },
    drop: () => {},
  };
}
