/**
 * Incremental SHA-256 that runs on every runtime.
 *
 * `@noble/hashes` is the portable implementation (edge runtimes without
 * `node:crypto` included). Where `node:crypto` exists — Deno, Bun and Node — its
 * native `createHash` is used instead: it is about ten times faster and gives the
 * same digests (tests/integrity.test.ts checks that on random inputs).
 *
 * @module
 */
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

/** An incremental SHA-256 computation. */
export interface Sha256 {
  /** Feeds more bytes; returns the same object for chaining. */
  update(data: Uint8Array): Sha256;
  /** Finishes the computation and returns the 64-character lower-case hex digest. */
  hexDigest(): string;
  /** The hex digest of the bytes fed so far; the computation goes on. */
  digestSoFar(): string;
}

interface NodeHash {
  update(data: Uint8Array): unknown;
  digest(encoding: "hex"): string;
  copy(): NodeHash;
}
type CreateHash = (algorithm: "sha256") => NodeHash;

const nodeCreateHash: CreateHash | undefined = await import("node:crypto").then(
  (crypto) => crypto.createHash as unknown as CreateHash,
  () => undefined,
);

/**
 * Starts a SHA-256 computation with `@noble/hashes`, whatever the runtime.
 *
 * @example
 * ```ts
 * const hex = createPortableSha256().update(new TextEncoder().encode("abc")).hexDigest();
 * // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
 * ```
 */
export function createPortableSha256(): Sha256 {
  const hash = nobleSha256.create();
  const self: Sha256 = {
    update(data) {
      hash.update(data);
      return self;
    },
    hexDigest: () => bytesToHex(hash.digest()),
    digestSoFar: () => bytesToHex(hash.clone().digest()),
  };
  return self;
}

/**
 * Starts a SHA-256 computation on the fastest implementation available:
 * `node:crypto` where the runtime has it, `@noble/hashes` otherwise.
 *
 * @example
 * ```ts
 * const hash = createSha256();
 * for (const chunk of [new Uint8Array([1]), new Uint8Array([2])]) hash.update(chunk);
 * console.log(hash.hexDigest());
 * ```
 */
export function createSha256(): Sha256 {
  if (!nodeCreateHash) return createPortableSha256();
  const hash = nodeCreateHash("sha256");
  const self: Sha256 = {
    update(data) {
      hash.update(data);
      return self;
    },
    hexDigest: () => hash.digest("hex"),
    digestSoFar: () => hash.copy().digest("hex"),
  };
  return self;
}

const encoder = new TextEncoder();

/**
 * Hashes bytes or a string (as UTF-8) in one call.
 *
 * @example
 * ```ts
 * sha256Hex("abc"); // "ba7816bf…15ad"
 * ```
 */
export function sha256Hex(data: Uint8Array | string): string {
  return createSha256().update(typeof data === "string" ? encoder.encode(data) : data).hexDigest();
}

/** Whether the `node:crypto` fast path is in use on this runtime. */
export const usesNativeSha256: boolean = nodeCreateHash !== undefined;
