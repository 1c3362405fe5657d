/**
 * Starts the real batchspool server as a child process on the current runtime,
 * listening on 127.0.0.1 with a free port.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { DENO_SERVER_V8_FLAGS, typeScriptCommand } from "../../src/runtime/detect.ts";

export const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  baseURL: string;
  /** Everything the server printed so far. */
  output(): string;
  /** Resolves when the server printed a line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  exited: Promise<number | null>;
}

/**
 * Starts `batchspool serve --port 0 …args`. From the TypeScript source on this
 * runtime by default; `fromBuild` runs the npm build with Node, as users do;
 * `wrapper` is a command that runs the server (e.g. `unshare … --`).
 */
export function startServer(
  args: string[],
  env: Record<string, string> = {},
  options: { fromBuild?: boolean; wrapper?: string[] } = {},
): Promise<ServerProcess> {
  const serveArgs = ["serve", "--port", "0", ...args];
  const [server, serverArgs] = options.fromBuild
    ? ["node", [fileURLToPath(new URL("../../dist/cli.js", import.meta.url)), ...serveArgs]]
    : typeScriptCommand(CLI, serveArgs, [DENO_SERVER_V8_FLAGS]);
  // A wrapper (such as `unshare … --`) runs the server as its own child.
  const [command, commandArgs] = options.wrapper
    ? [options.wrapper[0], [...options.wrapper.slice(1), server, ...serverArgs]]
    : [server, serverArgs];
  const child = spawn(command, commandArgs, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  let output = "";
  const watchers = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const watcher of watchers) watcher();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        watchers.delete(check);
        reject(new Error(`timed out waiting for ${pattern}; server said:\n${output}`));
      }, timeoutMs);
      const check = () => {
        if (pattern.test(output)) {
          clearTimeout(timer);
          watchers.delete(check);
          resolve();
        }
      };
      watchers.add(check);
      exited.then((code) => {
        if (!pattern.test(output)) {
          clearTimeout(timer);
          watchers.delete(check);
          reject(new Error(`server exited (${code}) before ${pattern}; it said:\n${output}`));
        }
      });
      check();
    });
  return (async () => {
    // Bound to 127.0.0.1 or to every address (0.0.0.0): reached on 127.0.0.1 either way.
    await waitFor(/batchspool listening on http:\/\/(127\.0\.0\.1|0\.0\.0\.0):(\d+)/);
    const port = Number(/listening on http:\/\/(127\.0\.0\.1|0\.0\.0\.0):(\d+)/.exec(output)![2]);
    return {
      child,
      port,
      baseURL: `http://127.0.0.1:${port}/v1`,
      output: () => output,
      waitFor,
      exited,
      async stop() {
        if (options.wrapper) {
          // The wrapper (unshare) ignores SIGTERM while it waits: the server it runs gets the signal, as pid 1 of a
          // container gets `docker stop`'s.
          const children = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").catch(() => "");
          for (const pid of children.trim().split(/\s+/).filter(Boolean)) process.kill(Number(pid), "SIGTERM");
        } else {
          child.kill("SIGTERM");
        }
        return await exited;
      },
      async kill() {
        child.kill("SIGKILL");
        await exited;
      },
    };
  })();
}

/** Polls until `check` returns a truthy value. */
export async function eventually<T>(check: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
