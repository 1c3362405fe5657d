/**
 * Files: upload, list, read, delete, and expiry, on top of any storage adapter.
 *
 * @module
 */
import { DEFAULT_MARK_EVERY, type DigestMarks, verifiedStream } from "../../integrity/digest_marks.ts";
import { type Clock, systemClock } from "../../shared/clock.ts";
import { type Logger, silentLogger } from "../../shared/logger.ts";
import { isStorageError } from "../../storage/errors.ts";
import type { Storage } from "../../storage/types.ts";
import type { OffThreadScanner } from "../input/off_thread_scan.ts";
import { DEFAULT_VALIDATION_LIMITS, type InputScan, type ValidationLimits } from "../input/validation.ts";
import { MAX_MESSAGE_BATCH_BYTES, MAX_MESSAGE_BATCH_REQUESTS } from "../model/batch_params.ts";
import { BatchError } from "../model/errors.ts";
import { isFileId, newFileId } from "../model/ids.ts";
import { type FileContentRef, type FileObject, type FilePurpose, type FileRecord, UPLOAD_PURPOSES } from "../model/objects.ts";
import { fileBlobKey, fileDocKey, fileDocPrefix } from "../model/storage_keys.ts";
import { FileExpiryIndex } from "./file_expiry.ts";
import { NO_SCAN, startUploadScan } from "./upload_scan.ts";

/** Size limits for uploads. */
export interface FileLimits {
  /** Largest file, any purpose. Default 512 MB. */
  maxFileBytes: number;
  /** Largest file with purpose `batch`. Default 200 MB. */
  maxBatchInputBytes: number;
}

/** The default limits, as OpenAI's. */
export const DEFAULT_FILE_LIMITS: FileLimits = {
  maxFileBytes: 512 * 1024 * 1024,
  maxBatchInputBytes: 200 * 1024 * 1024,
};

/** A message batch's input: its create body's 256 MB, and the framing of 100,000 request lines. */
const MESSAGE_BATCH_INPUT_BYTES = MAX_MESSAGE_BATCH_BYTES + MAX_MESSAGE_BATCH_REQUESTS * 80;

/** The validation limits of a message batch's input: Anthropic's count of requests. */
export function messageBatchLimits(limits: ValidationLimits): ValidationLimits {
  return { ...limits, maxRequests: MAX_MESSAGE_BATCH_REQUESTS };
}

/** File records a listing reads at once. */
const READ_AT_ONCE = 128;

/** Batch input files expire after 30 days unless told otherwise. */
export const DEFAULT_BATCH_INPUT_EXPIRY_SECONDS = 30 * 24 * 3600;
const MIN_EXPIRY_SECONDS = 3600;
const MAX_EXPIRY_SECONDS = 30 * 24 * 3600;

/** What an upload needs. */
export interface UploadRequest {
  owner: string;
  filename: string;
  /** The purpose, when known before the bytes arrive (it decides the size limit). */
  purpose?: string;
  content: ReadableStream<Uint8Array> | Uint8Array;
  /**
   * The input of a batch of Anthropic's Message Batches API, made by
   * batchspool from its create body: its own limits (100,000 requests, its
   * body's 256 MB and the lines' framing) instead of a batch input's.
   */
  messageBatch?: boolean;
}

/** Listing options, as `GET /v1/files`. */
export interface FileListOptions {
  purpose?: string;
  limit?: number;
  order?: "asc" | "desc";
  after?: string;
}

/** A page of files. */
export interface FilePage {
  data: FileObject[];
  has_more: boolean;
}

/** The file service used by the HTTP layer and the engine. */
export interface FileService {
  /** Streams an upload into storage; returns the id and size so the caller can finish it with {@link FileService.commit}. */
  receive(upload: UploadRequest): Promise<ReceivedUpload>;
  /** Validates purpose and expiry, then records the file. Removes the bytes when anything is wrong. */
  commit(received: ReceivedUpload, details: { purpose: string | undefined; expiresAfterSeconds?: number }): Promise<FileObject>;
  /** Forgets a received upload that will not be committed. */
  discard(received: ReceivedUpload): Promise<void>;
  /** Records a file whose bytes already live in storage (batch results). */
  adopt(record: FileRecord): Promise<FileObject>;
  /** A file's record. @throws {BatchError} `not_found` (also for another owner's or an expired file) */
  get(owner: string, fileId: string): Promise<FileRecord>;
  /** An owner's files, as `GET /v1/files` (`limit` 1..10,000, `order` desc by default). */
  list(owner: string, options: FileListOptions): Promise<FilePage>;
  /**
   * The bytes of a file as a stream, each stretch checked against the digest
   * recorded when the file was made: at the first stretch that differs the
   * stream errors (after the bytes before it), so changed bytes are never given out.
   */
  content(owner: string, fileId: string): Promise<{ record: FileRecord; stream: ReadableStream<Uint8Array> }>;
  /** Deletes a file (its bytes stay while a running batch reads them). @throws {BatchError} `not_found` */
  delete(owner: string, fileId: string): Promise<void>;
  /** Deletes every expired file; returns how many. */
  sweepExpired(): Promise<number>;
}

/** Result files kept outside storage: their bytes, checked as they are read, and their deletion. */
export interface ResultFileReader {
  read(content: FileContentRef, bytes: number): Promise<ReadableStream<Uint8Array>>;
  delete(content: FileContentRef): Promise<void>;
}

/** An upload whose bytes are stored but that is not yet a file. */
export interface ReceivedUpload {
  id: string;
  owner: string;
  filename: string;
  bytes: number;
  sha256: string;
  marks: DigestMarks;
  createdAt: number;
  /** Validation done while it streamed in, when it looked like a batch input. */
  scan?: InputScan;
}

/** Options for {@link createFileService}. */
export interface FileServiceOptions {
  limits?: FileLimits;
  /** Where time comes from (injectable for tests). */
  clock?: Clock;
  /**
   * Whether a file is the input of a batch still running: deleting such a file
   * removes it from the API at once, but its bytes stay until the batch ends.
   */
  isInUse?: (fileId: string) => boolean | Promise<boolean>;
  /** Reads and deletes result files kept outside storage (a PostgreSQL ledger's results table). */
  resultFiles?: ResultFileReader | null;
  /** Limits of the validation scan that runs while a batch input is uploaded. */
  validation?: ValidationLimits;
  /** Runs the scans of streamed uploads on a worker thread (otherwise they run in this one). */
  offThreadScanner?: OffThreadScanner;
  /** Where a scan that failed is reported. */
  logger?: Logger;
}

const nowSeconds = (clock: Clock) => Math.floor(clock.now() / 1000);

/**
 * Creates the file service.
 *
 * @example
 * ```ts
 * const files = createFileService(createMemoryStorage(), { limits: DEFAULT_FILE_LIMITS });
 * const received = await files.receive({ owner: "default", filename: "in.jsonl", purpose: "batch", content: bytes });
 * const file = await files.commit(received, { purpose: "batch" });
 * ```
 */
export function createFileService(storage: Storage, options: FileServiceOptions = {}): FileService {
  const limits = options.limits ?? DEFAULT_FILE_LIMITS;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const isInUse = options.isInUse ?? (() => false);
  const notFound = (fileId: string) => new BatchError("not_found", `No such File object: ${fileId}`, { param: "id" });

  const readRecord = async (owner: string, fileId: string): Promise<FileRecord> => {
    if (!isFileId(fileId)) throw notFound(fileId);
    const doc = await storage.documents.get<FileRecord>(fileDocKey(owner, fileId));
    if (!doc) throw notFound(fileId);
    const expiresAt = doc.value.file.expires_at;
    if (expiresAt !== null && expiresAt <= nowSeconds(clock)) {
      await removeFile(doc.value);
      throw notFound(fileId);
    }
    return doc.value;
  };

  const expiries = new FileExpiryIndex(storage);

  const removeFile = async (record: FileRecord) => {
    await storage.documents.delete(fileDocKey(record.owner, record.file.id));
    await expiries.remove(record);
    const content = record.content;
    if (content.store === "blobs") {
      if (!(await isInUse(record.file.id))) await storage.blobs.delete(content.key);
    } else if (content.store === "logs") await storage.logs.delete(content.key);
    else await resultFiles().delete(content);
  };

  const resultFiles = (): ResultFileReader => {
    if (!options.resultFiles) throw new BatchError("not_found", "This server keeps no results outside its storage.");
    return options.resultFiles;
  };

  const sizeLimitFor = (purpose: string | undefined) =>
    purpose === "batch" ? Math.min(limits.maxBatchInputBytes, limits.maxFileBytes) : limits.maxFileBytes;

  const tooLarge = (purpose: string | undefined) =>
    new BatchError(
      "too_large",
      purpose === "batch"
        ? `File is too large: a batch input may be at most ${sizeLimitFor("batch")} bytes.`
        : `File is too large: a file may be at most ${limits.maxFileBytes} bytes.`,
      { param: "file" },
    );

  const service: FileService = {
    async receive(upload) {
      const id = newFileId(clock.now());
      // A batch input (or a .jsonl file whose purpose is not known yet) is validated
      // as it streams in, while the upload waits on the network anyway.
      const looksLikeBatchInput = upload.purpose === "batch" ||
        (upload.purpose === undefined && /\.jsonl$/i.test(upload.filename));
      const baseLimits = options.validation ?? DEFAULT_VALIDATION_LIMITS;
      const limits = upload.messageBatch ? messageBatchLimits(baseLimits) : baseLimits;
      const content = upload.content;
      const scan = looksLikeBatchInput ? startUploadScan(content, limits, upload.filename, options.offThreadScanner, logger) : NO_SCAN;
      try {
        const info = await storage.blobs.put(fileBlobKey(id), content, {
          maxBytes: upload.messageBatch ? MESSAGE_BATCH_INPUT_BYTES : sizeLimitFor(upload.purpose),
          markEvery: DEFAULT_MARK_EVERY,
          hasher: scan.hasher,
        });
        return {
          id,
          owner: upload.owner,
          filename: upload.filename,
          bytes: info.bytes,
          sha256: info.sha256,
          marks: info.marks!,
          createdAt: nowSeconds(clock),
          scan: await scan.finish(),
        };
      } catch (error) {
        scan.drop();
        if (isStorageError(error, "too_large")) throw tooLarge(upload.purpose);
        throw error;
      }
    },

    async commit(received, details) {
      try {
        const purpose = details.purpose;
        if (!purpose) {
          throw new BatchError("invalid_request", "Missing required parameter: 'purpose'.", { param: "purpose" });
        }
        if (!(UPLOAD_PURPOSES as readonly string[]).includes(purpose)) {
          throw new BatchError(
            "invalid_request",
            `Invalid value for 'purpose': ${JSON.stringify(purpose)}. Expected one of ${UPLOAD_PURPOSES.join(", ")}.`,
            { param: "purpose" },
          );
        }
        if (received.bytes > sizeLimitFor(purpose)) throw tooLarge(purpose);
        let expiresAfter = details.expiresAfterSeconds;
        if (expiresAfter !== undefined) {
          if (!Number.isInteger(expiresAfter) || expiresAfter < MIN_EXPIRY_SECONDS || expiresAfter > MAX_EXPIRY_SECONDS) {
            throw new BatchError(
              "invalid_request",
              `'expires_after[seconds]' must be an integer between ${MIN_EXPIRY_SECONDS} and ${MAX_EXPIRY_SECONDS}.`,
              { param: "expires_after[seconds]" },
            );
          }
        } else if (purpose === "batch") {
          expiresAfter = DEFAULT_BATCH_INPUT_EXPIRY_SECONDS;
        }
        const file: FileObject = {
          id: received.id,
          object: "file",
          bytes: received.bytes,
          created_at: received.createdAt,
          filename: received.filename,
          purpose: purpose as FilePurpose,
          status: "processed",
          expires_at: expiresAfter === undefined ? null : received.createdAt + expiresAfter,
          status_details: null,
        };
        const record: FileRecord = {
          file,
          owner: received.owner,
          sha256: received.sha256,
          marks: received.marks,
          content: { store: "blobs", key: fileBlobKey(received.id) },
          ...(purpose === "batch" && received.scan ? { scan: received.scan } : {}),
        };
        await expiries.add(record);
        await storage.documents.put(fileDocKey(received.owner, received.id), record, { ifVersion: 0 });
        return file;
      } catch (error) {
        await service.discard(received);
        throw error;
      }
    },

    async discard(received) {
      await storage.blobs.delete(fileBlobKey(received.id));
    },

    async adopt(record) {
      await expiries.add(record);
      await storage.documents.put(fileDocKey(record.owner, record.file.id), record);
      return record.file;
    },

    get: readRecord,

    async list(owner, options) {
      const limit = options.limit ?? 10000;
      if (!Number.isInteger(limit) || limit < 1 || limit > 10000) {
        throw new BatchError("invalid_request", "'limit' must be an integer between 1 and 10000.", { param: "limit" });
      }
      const order = options.order ?? "desc";
      if (order !== "asc" && order !== "desc") {
        throw new BatchError("invalid_request", "'order' must be 'asc' or 'desc'.", { param: "order" });
      }
      if (options.after !== undefined && !isFileId(options.after)) {
        throw new BatchError("invalid_request", `'after' is not a file id: ${JSON.stringify(options.after)}.`, {
          param: "after",
        });
      }
      const prefix = fileDocPrefix(owner);
      const data: FileObject[] = [];
      let after = options.after === undefined ? undefined : prefix + options.after;
      const now = nowSeconds(clock);
      for (;;) {
        // Records are read a batch of keys at once (one after another, a page cost a read's latency per file).
        const page = await storage.documents.list(prefix, {
          after,
          reverse: order === "desc",
          limit: Math.min(READ_AT_ONCE, limit + 1 - data.length),
        });
        const docs = await Promise.all(page.keys.map((key) => storage.documents.get<FileRecord>(key)));
        for (const [i, doc] of docs.entries()) {
          after = page.keys[i];
          if (!doc) continue;
          const file = doc.value.file;
          if (file.expires_at !== null && file.expires_at <= now) continue;
          if (options.purpose !== undefined && file.purpose !== options.purpose) continue;
          if (data.length === limit) return { data, has_more: true };
          data.push(file);
        }
        if (!page.more) return { data, has_more: false };
      }
    },

    async content(owner, fileId) {
      const record = await readRecord(owner, fileId);
      const content = record.content;
      const onChanged = (error: unknown) =>
        logger.error(`file ${fileId} differs from what was recorded (${(error as Error).message}); its download was cut short`);
      if (content.store === "results") {
        // Each record is checked against its own digest as it is read.
        return { record, stream: reportingErrors(await resultFiles().read(content, record.file.bytes), onChanged) };
      }
      const stored = content.store === "blobs" ? await storage.blobs.get(content.key) : await storage.logs.read(content.key);
      // Bytes changed since they were recorded are never served: the stream ends before the stretch that differs.
      const expected = { sha256: record.sha256!, bytes: record.file.bytes, marks: record.marks! };
      return { record, stream: verifiedStream(stored, expected, onChanged) };
    },

    async delete(owner, fileId) {
      await removeFile(await readRecord(owner, fileId));
    },

    async sweepExpired() {
      let removed = 0;
      await expiries.sweep(nowSeconds(clock), async (record) => {
        await removeFile(record);
        removed++;
      });
      return removed;
    },
  };
  return service;
}

/** Passes a stream through, telling `onError` of the error that ends it early. */
function reportingErrors(stream: ReadableStream<Uint8Array>, onError: (error: unknown) => void): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        onError(error);
        controller.error(error);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}
