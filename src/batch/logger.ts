/**
 * The engine's logger: three levels, plain strings.
 *
 * @module
 */

/** Where the engine reports what happens. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
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
