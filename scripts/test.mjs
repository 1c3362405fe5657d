#!/usr/bin/env node
// Runs the checks and the same test files under Deno, Bun and Node (the oldest
// Node that package.json's engines allows and the current LTS, both installed
// from npm as devDependencies), then prints one summary line
// `N passed, N failed` summed over the runs.
//
// Tests live in folders by level: tests/unit (one module, in process),
// tests/contract (the storage and engine contracts on every adapter and
// ledger, in process), tests/process (real servers and child processes);
// tests/support holds their helpers.
//
// Usage: node scripts/test.mjs [--only deno|bun|node|node-22|node-24] [--skip-checks] [file or folder ...]
// With files or folders (npm test -- tests/unit/ids.test.ts), only those run (after the build, which
// some tests use), on every runtime unless --only says otherwise.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { startDatabase } from "./embedded_postgres.mjs";

const args = process.argv.slice(2);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const chosen = args.filter((arg, i) => !arg.startsWith("--") && args[i - 1] !== "--only");
const skipChecks = args.includes("--skip-checks");
const bin = (name) => `node_modules/.bin/${name}`;

/** The test files under a file or folder, sorted. */
function testFilesUnder(path) {
  if (statSync(path).isFile()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() || entry.name.endsWith(".test.ts"))
    .flatMap((entry) => testFilesUnder(join(path, entry.name)))
    .sort();
}
const testFiles = (chosen.length ? chosen : ["tests"]).flatMap(testFilesUnder).map((file) => file.replace(/^\.\//, ""));
if (!testFiles.length) {
  console.log(`no test files under ${chosen.join(", ")}`);
  process.exit(1);
}

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
    args: ["test", "-A", "--no-check", ...testFiles],
    passed: /(\d+) passed/g,
    failed: /(\d+) failed/g,
  },
  bun: {
    command: bin("bun"),
    // Bun takes a path (rather than a name filter) when it starts with ./
    args: ["test", "--timeout", "120000", ...testFiles.map((file) => `./${file}`)],
    passed: /^\s*(\d+) pass$/gm,
    failed: /^\s*(\d+) fail$/gm,
  },
};

let failures = 0;
if (!skipChecks) {
  // A run of one runtime or of chosen files still builds dist/ (the packaging test serves it); the other checks run with everything.
  const checks = only || chosen.length ? [["build", process.execPath, ["scripts/build.mjs"]]] : [
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

const database = await startDatabase("BATCHSPOOL_TEST_DATABASE_URL");
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
console.log(database.url ? database.label : `${database.label}: the PostgreSQL suites failed`);
for (const row of rows) console.log(row);
if (failures) console.log(`${failures} check(s) failed`);
if (!database.url) failures++;
console.log(`${passed} passed, ${failed + failures} failed`);
process.exit(failed + failures === 0 ? 0 : 1);
