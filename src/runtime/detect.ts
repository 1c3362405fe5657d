/**
 * Which JavaScript runtime this code runs on, and how to start another process
 * of the same runtime on a TypeScript entry point.
 *
 * @module
 */
import process from "node:process";

/** The runtimes batchspool supports. */
export type RuntimeName = "deno" | "bun" | "node";

/**
 * The current runtime.
 *
 * @example
 * ```ts
 * if (currentRuntime() === "deno") console.log("hello from Deno");
 * ```
 */
export function currentRuntime(): RuntimeName {
  if ("Deno" in globalThis) return "deno";
  if ("Bun" in globalThis) return "bun";
  return "node";
}

/**
 * The V8 flag batchspool's server runs with on Deno (`deno task serve`, the
 * README's commands): a young generation of at most 3 × 8 MiB. Under a
 * sustained allocation rate, such as a batch at full speed, Deno's V8 grows it
 * several times larger and the process keeps the pages (BENCHMARKS.md,
 * benchmark 4). Node's default and Bun's collector need none.
 */
export const DENO_SERVER_V8_FLAGS = "--v8-flags=--max-semi-space-size=8";

/**
 * The command and arguments that run a TypeScript file on the current runtime
 * (Node runs it through `tsx`, which must be installed). `denoFlags` go before
 * the file on Deno, e.g. {@link DENO_SERVER_V8_FLAGS}.
 *
 * @example
 * ```ts
 * const [command, args] = typeScriptCommand("src/cli.ts", ["serve"]);
 * ```
 */
export function typeScriptCommand(
  file: string,
  args: readonly string[] = [],
  denoFlags: readonly string[] = [],
): [string, string[]] {
  switch (currentRuntime()) {
    case "deno":
      return [process.execPath, ["run", "-A", ...denoFlags, file, ...args]];
    case "bun":
      return [process.execPath, [file, ...args]];
    case "node":
      return [process.execPath, ["--import", "tsx", file, ...args]];
  }
}
