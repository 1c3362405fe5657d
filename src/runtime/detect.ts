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
 * The command and arguments that run a TypeScript file on the current runtime
 * (Node runs it through `tsx`, which must be installed).
 *
 * @example
 * ```ts
 * const [command, args] = typeScriptCommand("src/cli.ts", ["serve"]);
 * ```
 */
export function typeScriptCommand(file: string, args: readonly string[] = []): [string, string[]] {
  switch (currentRuntime()) {
    case "deno":
      return [process.execPath, ["run", "-A", file, ...args]];
    case "bun":
      return [process.execPath, [file, ...args]];
    case "node":
      return [process.execPath, ["--import", "tsx", file, ...args]];
  }
}
