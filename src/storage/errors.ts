/**
 * The storage layer's one error family.
 *
 * @module
 */

/** Stable codes carried by {@link StorageError}. */
export type StorageErrorCode =
  | "not_found"
  | "conflict"
  | "invalid_key"
  | "invalid_record"
  | "too_large"
  | "corrupt"
  | "locked"
  | "closed"
  | "io";

/**
 * An error raised by a storage adapter. `code` is stable and meant for callers;
 * `cause` keeps the underlying error (an `ENOENT`, an integrity failure, …).
 *
 * @example
 * ```ts
 * try {
 *   await storage.documents.put("batches/b1", {}, { ifVersion: 3 });
 * } catch (error) {
 *   if (error instanceof StorageError && error.code === "conflict") retry();
 * }
 * ```
 */
export class StorageError extends Error {
  /** What went wrong, as a stable code. */
  readonly code: StorageErrorCode;
  /** The key involved, when there is one. */
  readonly key: string | undefined;

  /** @param options the `key` involved and the underlying `cause` */
  constructor(
    code: StorageErrorCode,
    message: string,
    options: { key?: string; cause?: unknown } = {},
  ) {
    super(`[batchspool] [storage] ${message}`, { cause: options.cause });
    this.name = "StorageError";
    this.code = code;
    this.key = options.key;
  }
}

/** Whether `error` is a {@link StorageError} with the given code. */
export function isStorageError(error: unknown, code?: StorageErrorCode): error is StorageError {
  return error instanceof StorageError && (code === undefined || error.code === code);
}
