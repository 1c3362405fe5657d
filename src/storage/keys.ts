/**
 * Key validation shared by every adapter.
 *
 * A key is one or more `/`-separated segments of letters, digits, `_`, `-` and
 * `.`, none of them starting with `.` (so `..` and hidden temp files can never be
 * named). Keys therefore can never reach outside an adapter's root.
 *
 * @module
 */
import { StorageError } from "./errors.ts";

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$/;
const MAX_KEY_LENGTH = 1024;

/**
 * Throws unless `key` is a valid storage key.
 *
 * @throws {StorageError} with code `invalid_key`.
 * @example
 * ```ts
 * assertValidKey("files/file-abc"); // ok
 * assertValidKey("../etc/passwd"); // throws
 * ```
 */
export function assertValidKey(key: string): void {
  if (typeof key !== "string" || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new StorageError("invalid_key", `invalid key ${JSON.stringify(key)}: empty or too long`, {
      key,
    });
  }
  for (const segment of key.split("/")) {
    if (!SEGMENT.test(segment)) {
      throw new StorageError(
        "invalid_key",
        `invalid key ${JSON.stringify(key)}: segment ${JSON.stringify(segment)} is not allowed`,
        { key },
      );
    }
  }
}

/**
 * Throws unless `prefix` can prefix a key: empty, or a valid key optionally
 * ending in `/`.
 *
 * @throws {StorageError} with code `invalid_key`.
 */
export function assertValidPrefix(prefix: string): void {
  if (prefix === "") return;
  assertValidKey(prefix.endsWith("/") ? prefix.slice(0, -1) : prefix);
}
