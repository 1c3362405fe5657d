/**
 * Documents in PostgreSQL: one row per key, its version in a column (so that
 * compare-and-swap is `UPDATE … WHERE version = $1`) and its value in a
 * SHA-256 envelope together with its key, so that a changed byte, or a row
 * that came to stand under another key, is reported as `corrupt`.
 *
 * Durability: each write is one statement, committed (and so durable) before
 * it resolves.
 *
 * @module
 */
import type postgres from "postgres";
import { IntegrityError, openEnvelope, sealEnvelope } from "../../integrity/envelope.ts";
import { StorageError } from "../errors.ts";
import { assertValidKey } from "../keys.ts";
import type { DocumentStore, KeyPage, ListOptions, StoredDocument, WriteCondition } from "../types.ts";
import { listKeys, query } from "./shared.ts";

interface Sealed {
  key: string;
  value: unknown;
}

/** Creates the document store on `sql` (whose search path is the schema). */
export function createPostgresDocumentStore(sql: postgres.Sql, ensureOpen: () => void): DocumentStore {
  const checked = (key: string) => {
    ensureOpen();
    assertValidKey(key);
  };
  const conflict = (key: string, current: number, expected: number) =>
    new StorageError("conflict", `document ${key} is at version ${current}, not ${expected}`, { key });
  const currentVersion = async (key: string): Promise<number> =>
    ((await sql`select version from documents where key = ${key}`)[0]?.version as number | undefined) ?? 0;

  return {
    async get<T>(key: string): Promise<StoredDocument<T> | null> {
      checked(key);
      const rows = await query(`read document ${key}`, key, () => sql`select version, envelope from documents where key = ${key}`);
      if (rows.length === 0) return null;
      let sealed: Sealed;
      try {
        sealed = openEnvelope<Sealed>(rows[0].envelope);
        if (sealed.key !== key) throw new IntegrityError(`the row holds the document of ${JSON.stringify(sealed.key)}`);
      } catch (error) {
        throw new StorageError("corrupt", `document ${key} failed its integrity check: ${(error as Error).message}`, {
          key,
          cause: error,
        });
      }
      return { value: sealed.value as T, version: rows[0].version };
    },

    async put<T>(key: string, value: T, condition?: WriteCondition): Promise<number> {
      checked(key);
      const envelope = sealEnvelope({ key, value } satisfies Sealed);
      return await query(`write document ${key}`, key, async () => {
        const expected = condition?.ifVersion;
        if (expected === undefined) {
          const [row] = await sql`
            insert into documents (key, version, envelope) values (${key}, 1, ${envelope})
            on conflict (key) do update set version = documents.version + 1, envelope = excluded.envelope
            returning version`;
          return row.version;
        }
        const rows = expected === 0
          ? await sql`insert into documents (key, version, envelope) values (${key}, 1, ${envelope})
              on conflict (key) do nothing returning version`
          : await sql`update documents set version = version + 1, envelope = ${envelope}
              where key = ${key} and version = ${expected} returning version`;
        if (rows.length === 0) throw conflict(key, await currentVersion(key), expected);
        return rows[0].version;
      });
    },

    async delete(key: string, condition?: WriteCondition): Promise<boolean> {
      checked(key);
      return await query(`delete document ${key}`, key, async () => {
        const expected = condition?.ifVersion;
        const rows = expected === undefined
          ? await sql`delete from documents where key = ${key} returning version`
          : await sql`delete from documents where key = ${key} and version = ${expected} returning version`;
        if (rows.length > 0) return true;
        if (expected !== undefined) {
          const current = await currentVersion(key);
          if (current !== expected) throw conflict(key, current, expected);
        }
        return false;
      });
    },

    list(prefix: string, options: ListOptions = {}): Promise<KeyPage> {
      ensureOpen();
      return listKeys(sql, "documents", prefix, options);
    },
  };
}
