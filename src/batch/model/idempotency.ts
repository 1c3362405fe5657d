/**
 * Idempotency keys: the first answer to a create made with a key is kept for
 * 24 hours, per API key and route, so that a create retried with the same key
 * and the same request gets that answer again instead of making a second
 * file or batch; the same key with another request is a conflict. The record
 * is a document (so it outlives restarts and is shared by a cluster's nodes):
 * claimed by a compare-and-swap before the create runs, so of creates raced
 * with one key, on one node or several, one runs and the others wait for its
 * answer.
 *
 * @module
 */
import { sha256Hex } from "../../integrity/sha256.ts";
import { type Clock, sleep } from "../../shared/clock.ts";
import { StorageError } from "../../storage/errors.ts";
import type { Storage } from "../../storage/types.ts";
import { BatchError } from "./errors.ts";

/** How long a key's first answer is kept. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
/** A create this old that never recorded its answer died with its process: its key is free again. */
const ABANDONED_AFTER_MS = 10 * 60_000;
/** How often a request waits to see whether the create with its key has answered. */
const WAIT_MS = 50;
/** Keys are a client's own words: at most this long, and printable. */
const KEY = /^[\x21-\x7e]{1,255}$/;
const PREFIX = "idempotency/";

/** What is kept of a key's use. */
interface IdempotencyRecord {
  /** What the request was (its route's fingerprint of it). */
  fingerprint: string;
  /** Milliseconds since the epoch. */
  created_at: number;
  state: "pending" | "done";
  /** The answer, once done. */
  response: unknown;
}

/** The routes whose creates take a key (a key is one route's). */
export type IdempotentRoute = "files" | "batches" | "message_batches";

/** An answer, and whether it is a kept one given again. */
export interface IdempotentAnswer<T> {
  value: T;
  replayed: boolean;
}

/** The `Idempotency-Key` of a request, checked (undefined: none given). @throws {BatchError} `invalid_request` */
export function checkIdempotencyKey(key: string | undefined): string | undefined {
  if (key === undefined) return undefined;
  if (!KEY.test(key)) {
    throw new BatchError("invalid_request", "Idempotency-Key must be 1 to 255 printable ASCII characters.", { param: "Idempotency-Key" });
  }
  return key;
}

/** A fingerprint of a JSON request body that does not depend on its members' order or spacing. */
export function jsonFingerprint(value: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (typeof v === "object" && v !== null) {
      return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return sha256Hex(JSON.stringify(canonical(value)));
}

/** The idempotency records of a storage. */
export class IdempotencyKeys {
  readonly #storage: Storage;
  readonly #clock: Clock;

  constructor(storage: Storage, clock: Clock) {
    this.#storage = storage;
    this.#clock = clock;
  }

  /**
   * Runs `create` once for `owner`'s `key` on `route`, and returns its answer;
   * or, when the key was used with the same `fingerprint` in the last 24
   * hours, that use's answer (waiting for it while it runs). An error of
   * `create` is not kept: the key is free for a retry.
   *
   * @throws {BatchError} `conflict` when the key was used with another request
   * @example
   * ```ts
   * const { value } = await keys.once(owner, "batches", key, jsonFingerprint(body), () => engine.createBatch(owner, body));
   * ```
   */
  async once<T>(owner: string, route: IdempotentRoute, key: string, fingerprint: string, create: () => Promise<T>): Promise<IdempotentAnswer<T>> {
    const docKey = `${PREFIX}${owner}/${route}/${sha256Hex(key)}`;
    for (;;) {
      const current = await this.#storage.documents.get<IdempotencyRecord>(docKey);
      const now = this.#clock.now();
      if (current && this.#live(current.value, now)) {
        if (current.value.fingerprint !== fingerprint) {
          throw new BatchError(
            "conflict",
            `Idempotency-Key ${JSON.stringify(key)} was already used with a different request in the last 24 hours; use a new key for a new request.`,
            { param: "Idempotency-Key" },
          );
        }
        if (current.value.state === "done") return { value: current.value.response as T, replayed: true };
        // The first request with this key is still making its answer.
        await sleep(this.#clock, WAIT_MS);
        continue;
      }
      let version: number;
      try {
        const claim: IdempotencyRecord = { fingerprint, created_at: now, state: "pending", response: null };
        version = await this.#storage.documents.put(docKey, claim, { ifVersion: current?.version ?? 0 });
      } catch (error) {
        // Another request claimed it first: see what it is.
        if (error instanceof StorageError && error.code === "conflict") continue;
        throw error;
      }
      let value: T;
      try {
        value = await create();
      } catch (error) {
        await this.#storage.documents.delete(docKey, { ifVersion: version }).catch(() => {});
        throw error;
      }
      const done: IdempotencyRecord = { fingerprint, created_at: now, state: "done", response: value };
      await this.#storage.documents.put(docKey, done, { ifVersion: version }).catch((error) => {
        // Taken over as abandoned while this create ran past ten minutes: the answer still goes to this client.
        if (!(error instanceof StorageError && error.code === "conflict")) throw error;
      });
      return { value, replayed: false };
    }
  }

  /** Removes the records past their 24 hours (and claims abandoned by creates that died); returns how many. */
  async sweep(): Promise<number> {
    let removed = 0;
    let after: string | undefined;
    for (;;) {
      const page = await this.#storage.documents.list(PREFIX, { after, limit: 200 });
      for (const key of page.keys) {
        const record = await this.#storage.documents.get<IdempotencyRecord>(key);
        if (record && !this.#live(record.value, this.#clock.now())) {
          if (await this.#storage.documents.delete(key, { ifVersion: record.version }).catch(() => false)) removed++;
        }
      }
      if (!page.more || !page.keys.length) return removed;
      after = page.keys[page.keys.length - 1];
    }
  }

  #live(record: IdempotencyRecord, now: number): boolean {
    const age = now - record.created_at;
    return age < IDEMPOTENCY_TTL_MS && !(record.state === "pending" && age > ABANDONED_AFTER_MS);
  }
}
