#!/usr/bin/env node
// Runs the benchmarks under Node, Bun and Deno, writes each result as JSON under
// bench/results/, and prints one table per benchmark.
// Usage: npm run bench [-- <benchmark> ...] [--runtimes node,bun,deno] [--runs n]
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { startDatabase } from "./embedded_postgres.mjs";

const ALL = ["engine_overhead", "http_upstream", "upload_ingest", "memory", "recovery", "status_latency", "history", "postgres", "cluster", "hash_flooding", "scheduling", "adaptive_concurrency", "prefix_grouping", "transports"];
const args = process.argv.slice(2);
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const runtimes = (option("--runtimes") ?? "node,bun,deno").split(",");
const runs = option("--runs");
const named = args.filter((a, i) => !a.startsWith("--") && !["--runtimes", "--runs"].includes(args[i - 1]));
const benches = named.length ? named : ALL;

// Node from npm (the project needs Node >= 22.12; the `node` running this script may be older).
const nodeFromNpm = ["node-24", "node-22"].map((n) => `node_modules/${n}/bin/node`).find((p) => existsSync(p));
const commands = {
  node: [nodeFromNpm ?? process.execPath, ["--import", "tsx"]],
  bun: ["node_modules/.bin/bun", []],
  deno: ["node_modules/.bin/deno", ["run", "-A"]],
};

/** The PostgreSQL of the benchmarks that use one (BATCHSPOOL_BENCH_DATABASE_URL, else a throwaway server). */
let database = null;

function run(command, commandArgs) {
  return new Promise((resolve) => {
    const env = database?.url ? { ...process.env, BATCHSPOOL_BENCH_DATABASE_URL: database.url } : process.env;
    const child = spawn(command, commandArgs, { stdio: ["ignore", "pipe", "inherit"], env });
    let output = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.on("close", (code) => resolve({ code, output }));
  });
}

mkdirSync("bench/results", { recursive: true });
const build = await run(process.execPath, ["scripts/build.mjs"]);
if (build.code !== 0) process.exit(1);
const machine = { cores: (await import("node:os")).cpus().length, memory_gib: Math.round((await import("node:os")).totalmem() / 2 ** 30) };
let failed = 0;
if (benches.includes("postgres") || benches.includes("cluster")) {
  database = await startDatabase("BATCHSPOOL_BENCH_DATABASE_URL");
  console.log(`=== ${database.label}`);
}
for (const bench of benches) {
  const rows = [];
  for (const runtime of runtimes) {
    const [command, prefix] = commands[runtime];
    console.log(`\n=== ${bench} on ${runtime}`);
    const { code, output } = await run(command, [...prefix, `bench/${bench}.ts`, ...(runs ? ["--runs", runs] : [])]);
    const line = output.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
    if (code !== 0 || !line) {
      console.log(`${bench} on ${runtime} failed (exit ${code})`);
      failed++;
      continue;
    }
    const result = { ...JSON.parse(line.slice("BENCH_RESULT ".length)), machine, date: new Date().toISOString() };
    writeFileSync(`bench/results/${bench}-${runtime}.json`, JSON.stringify(result, null, 2) + "\n");
    rows.push(result);
  }
  console.log(`\n${bench}`);
  for (const row of rows) {
    const { name: _name, runtime, runs: _runs, machine: _machine, date: _date, ...figures } = row;
    console.log(`  ${runtime.padEnd(5)} ${JSON.stringify(figures)}`);
  }
}
await database?.stop();
process.exit(failed ? 1 : 0);
