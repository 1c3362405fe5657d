/**
 * SHA-256 envelopes: `{"sha256": "<hex of payload text>", "payload": <payload>}`.
 *
 * The payload's exact JSON text is what is hashed, so a flipped byte, a truncated
 * write or a hand edit is detected on read and reported, never silently used.
 *
 * @module
 */
import { sha256Hex } from "./sha256.ts";

/** Raised when an envelope is unreadable or its payload does not match its hash. */
export class IntegrityError extends Error {
  /** Stable code: always `corrupt`. */
  readonly code = "corrupt" as const;
  /** @param options the underlying `cause` */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "IntegrityError";
  }
}

const PREFIX = '{"sha256":"';
const MIDDLE = '","payload":';
const HEX_LENGTH = 64;

/**
 * Wraps a JSON-serialisable payload in an envelope carrying its SHA-256.
 *
 * @example
 * ```ts
 * const text = sealEnvelope({ sequence: 3 });
 * openEnvelope<{ sequence: number }>(text).sequence; // 3
 * ```
 */
export function sealEnvelope(payload: unknown): string {
  const payloadText = JSON.stringify(payload);
  if (payloadText === undefined) throw new TypeError("payload must be JSON-serialisable");
  return `${PREFIX}${sha256Hex(payloadText)}${MIDDLE}${payloadText}}`;
}

/**
 * Verifies an envelope and returns its payload.
 *
 * @throws {IntegrityError} when the text is not an envelope or the hash does not match.
 * @example
 * ```ts
 * openEnvelope(sealEnvelope([1, 2])); // [1, 2]
 * ```
 */
export function openEnvelope<T>(text: string): T {
  const start = PREFIX.length + HEX_LENGTH + MIDDLE.length;
  if (
    !text.startsWith(PREFIX) || text.slice(PREFIX.length + HEX_LENGTH, start) !== MIDDLE ||
    !text.endsWith("}")
  ) {
    throw new IntegrityError("not a SHA-256 envelope (truncated or foreign content)");
  }
  const expected = text.slice(PREFIX.length, PREFIX.length + HEX_LENGTH);
  const payloadText = text.slice(start, -1);
  const actual = sha256Hex(payloadText);
  if (actual !== expected) {
    throw new IntegrityError(`SHA-256 mismatch: envelope says ${expected}, payload hashes to ${actual}`);
  }
  try {
    return JSON.parse(payloadText) as T;
  } catch (cause) {
    throw new IntegrityError("envelope payload is not valid JSON", { cause });
  }
}
