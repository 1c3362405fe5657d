/**
 * What the PostgreSQL stores share: wrapping the database's failures into the
 * storage layer's errors, and key ranges for listing.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type postgres from "postgres";
import { StorageError } from "../errors.ts";
import { assertValidPrefix } from "../keys.ts";
import { DEFAULT_LIST_LIMIT } from "../page_keys.ts";
import type { KeyPage, ListOptions } from "../types.ts";

/**
 * Runs a database call; anything it throws that is not already a
 * `StorageError` becomes `io` (a connection lost, a server restarting, a full
 * disk: all can heal).
 */
export async function query<T>(what: string, key: string | undefined, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof StorageError) throw error;
    throw new StorageError("io", `cannot ${what}: ${(error as Error)?.message ?? error}`, { key, cause: error });
  }
}

/**
 * Above every key that starts with a prefix: keys are ASCII letters, digits
 * and `_.-/`, all below DEL, so `prefix + DEL` bounds them.
 */
export const prefixEnd = (prefix: string): string => `${prefix}\x7f`;

/** Checks a listing's limit, as every adapter does. */
export function listLimit(options: ListOptions): number {
  const limit = options.limit ?? DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  return limit;
}

/** A page of keys from rows fetched with `limit + 1`. */
export function keyPage(rows: readonly { key: string }[], limit: number): KeyPage {
  return { keys: rows.slice(0, limit).map((row) => row.key), more: rows.length > limit };
}

/**
 * `bytea` as postgres.js sends and reads it (hex text), without the copy its
 * own serializer makes of every value before encoding it: blob chunks and log
 * rows are the bulk of what batchspool sends.
 */
export const BYTEA = {
  to: 17,
  from: [17],
  serialize: (bytes: Uint8Array): string => `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`,
  parse: (text: string): Uint8Array => Buffer.from(text.slice(2), "hex"),
};

/**
 * The parameters of a statement written out by hand, each placed as `$n`.
 * Bytes travel as base64 text that the server decodes: a third fewer bytes
 * to build, send and collect than the client's hex `bytea`.
 */
export class StatementParams {
  readonly values: (string | number)[] = [];

  /** Places a value, cast to `type`. */
  value(value: string | number, type: string): string {
    return `$${this.values.push(value)}::${type}`;
  }

  /** Places bytes, as a `bytea` expression. */
  bytes(bytes: Uint8Array): string {
    const base64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
    return `decode($${this.values.push(base64)}::text, 'base64')`;
  }
}

/** A page of the keys of `table` under `prefix`, in key order (forwards, or backwards with `reverse`). */
export async function listKeys(
  sql: postgres.Sql,
  table: "blobs" | "documents",
  prefix: string,
  options: ListOptions,
): Promise<KeyPage> {
  assertValidPrefix(prefix);
  const limit = listLimit(options);
  const end = prefixEnd(prefix);
  const { after } = options;
  const rows = await query(`list ${table} under ${prefix}`, undefined, () =>
    options.reverse
      ? sql`select key from ${sql(table)} where key >= ${prefix} and key < ${after === undefined || after > end ? end : after}
          order by key desc limit ${limit + 1}`
      : sql`select key from ${sql(table)} where key >= ${prefix} and key < ${end} and key > ${after ?? ""}
          order by key limit ${limit + 1}`);
  return keyPage(rows as unknown as { key: string }[], limit);
}
