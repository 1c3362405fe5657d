/**
 * The storage adapters the API, engine and crash tests run against: the data
 * directory and PostgreSQL. Each test gets a place of its own (a directory, a
 * schema), which it may open more than once (a restart) and which is removed
 * afterwards.
 */
import { readFile, writeFile } from "node:fs/promises";
import { createFsStorage } from "../../src/storage/fs/fs_storage.ts";
import { createPostgresStorage } from "../../src/storage/postgres/postgres_storage.ts";
import type { Storage } from "../../src/storage/types.ts";
import { databaseUrl, dropSchema, flipResultByte, flipStoredByte, freshSchemaName } from "./postgres.ts";
import { fsArea, logSegmentFile } from "./fs_layout.ts";
import { removeDir, tempDir } from "./tmp.ts";

/** Where one test's state lives. */
export interface StoragePlace {
  /** Opens the storage (again, after a restart: close the previous one first). */
  open(): Promise<Storage>;
  /** The `serve` flags that put a server there. */
  serveArgs: string[];
  /** Flips a bit of byte `at` of a stored blob, log or results file, behind batchspool's back. */
  flipByte(area: "blobs" | "logs" | "results", key: string, at: number): Promise<void>;
  /**
   * Where a server there keeps a finished batch's output file: a log with a
   * local ledger (fs), the results table with a PostgreSQL one.
   */
  outputOf(batchId: string): Promise<{ area: "blobs" | "logs" | "results"; key: string }>;
}

/** A storage adapter under test. */
export interface Adapter {
  name: "fs" | "postgres";
  /** A fresh place, given to `body`, removed afterwards. */
  withPlace<T>(body: (place: StoragePlace) => Promise<T>): Promise<T>;
}

export const FS: Adapter = {
  name: "fs",
  async withPlace(body) {
    const dir = await tempDir();
    try {
      return await body({
        open: () => createFsStorage({ dir }),
        serveArgs: ["--data", dir],
        outputOf: (batchId) => Promise.resolve({ area: "logs", key: `batches/${batchId}/output` }),
        async flipByte(area, key, at) {
          if (area === "results") throw new Error("a data directory's results are logs");
          const { path, recordsStart } = area === "logs" ? await logSegmentFile(dir, key) : { path: await fsArea(dir, area, key), recordsStart: 0 };
          const bytes = await readFile(path);
          bytes[recordsStart + at] ^= 0x20;
          await writeFile(path, bytes);
        },
      });
    } finally {
      await removeDir(dir);
    }
  },
};

export const POSTGRES: Adapter = {
  name: "postgres",
  async withPlace(body) {
    const url = databaseUrl();
    const schema = freshSchemaName();
    try {
      return await body({
        // A restart finds the schema's lock free at once: the previous storage closed, or its process died.
        open: () => createPostgresStorage({ url, schema, lockWaitMs: 10_000 }),
        serveArgs: ["--database", url, "--database-schema", schema],
        flipByte: (area, key, at) => area === "results" ? flipResultByte(schema, key, at) : flipStoredByte(schema, area, key, at),
        outputOf: (batchId) => Promise.resolve({ area: "results", key: `batches/${batchId}/output` }),
      });
    } finally {
      await dropSchema(schema);
    }
  },
};

/** Both adapters, the default first. */
export const ADAPTERS: readonly Adapter[] = [FS, POSTGRES];

/** Runs `body` with a freshly opened storage of `adapter`, closed and removed afterwards. */
export function withStorage<T>(adapter: Adapter, body: (storage: Storage, place: StoragePlace) => Promise<T>): Promise<T> {
  return adapter.withPlace(async (place) => {
    const storage = await place.open();
    try {
      return await body(storage, place);
    } finally {
      await storage.close();
    }
  });
}
