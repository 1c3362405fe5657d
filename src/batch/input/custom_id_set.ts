/**
 * The set of `custom_id`s seen while a batch input is scanned, for duplicate
 * detection, kept as UTF-8 bytes in one growing buffer with an open-addressing
 * table of their hashes: no JavaScript string per id is kept alive.
 *
 * Why not a `Set<string>`: on Bun, tens of thousands of id strings kept alive
 * through the scan of a large upload made its collector leave more garbage,
 * so memory grew with the file's size. The answers are exact either way:
 * equal hashes are confirmed by comparing the bytes.
 *
 * The hash is SipHash under a key drawn once per process: with an unkeyed hash
 * (FNV-1a, before), a tenant could upload ids that all share one hash and make
 * every insert probe all the ones before it.
 *
 * @module
 */

import { sipHash32, sipHashKey } from "../../shared/siphash.ts";

const encoder = new TextEncoder();
const PROCESS_KEY = sipHashKey();

/**
 * Exact set membership for strings, stored compactly.
 *
 * @example
 * ```ts
 * const ids = new CustomIdSet();
 * ids.add("a"); // true: it is new
 * ids.add("a"); // false: already there
 * ```
 */
export class CustomIdSet {
  /** UTF-8 bytes of every id, one after another. */
  #bytes = new Uint8Array(64 * 1024);
  #bytesUsed = 0;
  /** Per entry: where its bytes start and how many there are. */
  #startOf = new Int32Array(1024);
  #lengthOf = new Int32Array(1024);
  /** Open-addressing table: entry index + 1 (0 = empty), and that entry's hash. Its size is a power of two. */
  #slots = new Int32Array(2048);
  #slotHashes = new Int32Array(2048);
  #size = 0;
  #probes = 0;
  /** Room for the id being looked up, encoded. */
  #scratch = new Uint8Array(1024);
  readonly #key: Int32Array;

  /** @param key the hash key (from `sipHashKey`); the process's own unless a test gives one. */
  constructor(key: Int32Array = PROCESS_KEY) {
    this.#key = key;
  }

  /** How many distinct ids were added. */
  get size(): number {
    return this.#size;
  }

  /** How many slots the adds have looked at, in all (about 1.5 an add while hashes spread). */
  get probes(): number {
    return this.#probes;
  }

  /** Adds `id`; true when it was not there yet. */
  add(id: string): boolean {
    const encoded = this.#encode(id);
    const hash = sipHash32(this.#key, encoded);
    const mask = this.#slots.length - 1;
    for (let slot = hash & mask;; slot = (slot + 1) & mask) {
      this.#probes++;
      const entry = this.#slots[slot] - 1;
      if (entry < 0) {
        this.#insert(encoded, hash, slot);
        return true;
      }
      if (this.#slotHashes[slot] === hash && this.#equals(entry, encoded)) return false;
    }
  }

  /** The id's UTF-8 bytes, in the scratch buffer (valid until the next call). */
  #encode(id: string): Uint8Array {
    if (this.#scratch.length < id.length * 3) this.#scratch = new Uint8Array(id.length * 3);
    const scratch = this.#scratch;
    // Ids are usually ASCII: copied directly, as encodeInto costs more per call than such a loop.
    for (let i = 0; i < id.length; i++) {
      const code = id.charCodeAt(i);
      if (code >= 0x80) return scratch.subarray(0, encoder.encodeInto(id, scratch).written);
      scratch[i] = code;
    }
    return scratch.subarray(0, id.length);
  }

  #equals(entry: number, encoded: Uint8Array): boolean {
    const length = this.#lengthOf[entry];
    if (length !== encoded.length) return false;
    const start = this.#startOf[entry];
    for (let i = 0; i < length; i++) if (this.#bytes[start + i] !== encoded[i]) return false;
    return true;
  }

  #insert(encoded: Uint8Array, hash: number, slot: number) {
    const entry = this.#size++;
    if (entry === this.#startOf.length) {
      this.#startOf = grown(this.#startOf, entry * 2);
      this.#lengthOf = grown(this.#lengthOf, entry * 2);
    }
    if (this.#bytesUsed + encoded.length > this.#bytes.length) {
      this.#bytes = grown(this.#bytes, Math.max(this.#bytes.length * 2, this.#bytesUsed + encoded.length));
    }
    this.#bytes.set(encoded, this.#bytesUsed);
    this.#startOf[entry] = this.#bytesUsed;
    this.#lengthOf[entry] = encoded.length;
    this.#bytesUsed += encoded.length;
    this.#slots[slot] = entry + 1;
    this.#slotHashes[slot] = hash;
    if (this.#size * 2 > this.#slots.length) this.#rehash();
  }

  #rehash() {
    const slots = new Int32Array(this.#slots.length * 2);
    const hashes = new Int32Array(slots.length);
    const mask = slots.length - 1;
    for (let old = 0; old < this.#slots.length; old++) {
      if (this.#slots[old] === 0) continue;
      const hash = this.#slotHashes[old];
      let slot = hash & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = this.#slots[old];
      hashes[slot] = hash;
    }
    this.#slots = slots;
    this.#slotHashes = hashes;
  }
}

function grown<T extends Int32Array | Uint8Array>(array: T, length: number): T {
  const next = new (array.constructor as new (length: number) => T)(length);
  next.set(array);
  return next;
}
