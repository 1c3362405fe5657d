import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { BatchObject } from "../src/batch/model/objects.ts";
import { ProgressView } from "../src/client/progress_bar.ts";
import { typeScriptCommand } from "../src/runtime/detect.ts";
import { line } from "./_engine.ts";
import { CLI, startServer } from "./_server.ts";
import { removeDir, tempDir } from "./_tmp.ts";

function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const [command, commandArgs] = typeScriptCommand(CLI, args);
  const child = spawn(command, commandArgs, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

test("cli: submit --wait uploads, follows progress, and downloads the results", async () => {
  const dir = await tempDir();
  const server = await startServer(["--upstream", "mock", "--mock-latency", "5", "--data", join(dir, "data")]);
  try {
    await server.waitFor(/ready/);
    const input = join(dir, "in.jsonl");
    await writeFile(input, Array.from({ length: 30 }, (_, i) => line(`c${i}`, "m")).join("\n"));
    const out = join(dir, "out.jsonl");
    const result = await runCli(["submit", input, "--wait", "--out", out, "--metadata", "team=a"], {
      OPENAI_BASE_URL: server.baseURL,
    });
    assert.equal(result.code, 0, result.stderr);
    const batchId = result.stdout.trim().split("\n")[0];
    assert.match(batchId, /^batch_/);
    assert.match(result.stderr, /30\/30 · 30 completed · 0 failed/);
    assert.match(result.stderr, new RegExp(`saved ${out.replace(/[\\/.]/g, "\\$&")}`));
    const records = (await readFile(out, "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.equal(records.length, 30);
    const status = await runCli(["status", batchId, "--json", "--base-url", server.baseURL]);
    assert.equal(status.code, 0);
    const batch = JSON.parse(status.stdout) as BatchObject;
    assert.deepEqual(batch.metadata, { team: "a" });
    const list = await runCli(["list", "--base-url", server.baseURL]);
    assert.match(list.stdout, new RegExp(`${batchId}\\s+completed\\s+30/30`));
  } finally {
    await server.stop();
    await removeDir(dir);
  }
});

test("cli: errors say what went wrong, with exit codes scripts can rely on", async () => {
  const unreachable = await runCli(["status", "batch_x", "--base-url", "http://127.0.0.1:9/v1"]);
  assert.equal(unreachable.code, 3);
  assert.match(unreachable.stderr, /cannot reach .*Is the server running/);
  const missingFile = await runCli(["submit", "/nonexistent.jsonl", "--base-url", "http://127.0.0.1:9/v1"]);
  assert.equal(missingFile.code, 2);
  const unknown = await runCli(["frobnicate"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command/);
  const help = await runCli(["submit", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--wait/);
  const badFlag = await runCli(["list", "--limit", "1000"]);
  assert.equal(badFlag.code, 2);
});

test("cli: a refused request exits 4 with the server's message", async () => {
  const dir = await tempDir();
  const server = await startServer(["--upstream", "mock", "--data", dir, "--api-key", "k"]);
  try {
    await server.waitFor(/ready/);
    const noKey = await runCli(["list", "--base-url", server.baseURL], { OPENAI_API_KEY: "" });
    assert.equal(noKey.code, 4);
    assert.match(noKey.stderr, /401: .*--api-key/);
    const missing = await runCli(["status", `batch_${"0".repeat(36)}`, "--base-url", server.baseURL, "--api-key", "k"]);
    assert.equal(missing.code, 4);
    assert.match(missing.stderr, /404: No such Batch object/);
  } finally {
    await server.stop();
    await removeDir(dir);
  }
});

test("ProgressView draws a bar with counts, rate and ETA", () => {
  const view = new ProgressView();
  const batch = (completed: number, failed: number) =>
    ({ status: "in_progress", request_counts: { total: 100, completed, failed } }) as BatchObject;
  view.render(batch(0, 0), 0, true, 10);
  const line = view.render(batch(45, 5), 10_000, true, 10);
  assert.equal(line, "[#####.....] 50/100 · 45 completed · 5 failed · 5.0/s · ETA 0:10 · in_progress");
  assert.equal(view.render(batch(45, 5), 10_000, false), "50/100 · 45 completed · 5 failed · 5.0/s · ETA 0:10 · in_progress");
});
