/**
 * The logger every layer reports through: three levels, plain strings.
 *
 * @module
 */

/** Where the engine reports what happens. */
export interface Logger {
  /** Progress worth knowing: batches resumed, ended. */
  info(message: string): void;
  /** Something skipped or repaired: a corrupted checkpoint, an unreadable record. */
  warn(message: string): void;
  /** Something failed: an unreadable input, a failed write (the engine retries). */
  error(message: string): void;
}

/** Logs to the console with a `[batchspool]` prefix. */
export const consoleLogger: Logger = {
  info: (message) => console.log(`[batchspool] ${message}`),
  warn: (message) => console.warn(`[batchspool] warning: ${message}`),
  error: (message) => console.error(`[batchspool] error: ${message}`),
};

/** Logs nothing (for tests and embedding). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
