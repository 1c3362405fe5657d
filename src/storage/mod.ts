/**
 * Storage adapters: the contract and the fs and memory implementations.
 *
 * @module
 */
export type * from "./types.ts";
export { isStorageError, StorageError, type StorageErrorCode } from "./errors.ts";
export { assertValidKey } from "./keys.ts";
export { createMemoryStorage } from "./memory.ts";
export { createFsStorage, type FsStorageOptions } from "./fs/fs_storage.ts";
export { createPostgresStorage, DEFAULT_SCHEMA, type PostgresStorageOptions } from "./postgres/postgres_storage.ts";
