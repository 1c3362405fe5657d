import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { chatLine } from "../support/app.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const readJson = (name: string) => JSON.parse(readFileSync(`${root}/${name}`, "utf8"));

test("packaging: the JSR (deno.json) and npm (package.json) export maps name the same subpaths", () => {
  const deno = readJson("deno.json");
  const npm = readJson("package.json");
  assert.deepEqual(Object.keys(deno.exports).sort(), Object.keys(npm.exports).sort());
  assert.equal(deno.version, npm.version);
  for (const [subpath, target] of Object.entries(npm.exports as Record<string, { types: string; default: string }>)) {
    const source = (deno.exports[subpath] as string).replace(/^\.\//, "");
    const built = source.replace(/\.ts$/, ".js");
    assert.equal(target.default, `./dist/${built}`, `${subpath} points at the build of ${source}`);
    assert.equal(target.types, `./dist/${built.replace(/\.js$/, ".d.ts")}`);
  }
  assert.equal(npm.sideEffects, false);
  assert.equal(npm.bin.batchspool, "dist/cli.js");
});

test("packaging: the npm build serves with `node dist/cli.js serve`", async () => {
  assert.ok(existsSync(`${root}/dist/cli.js`), "dist/ is missing: npm test builds it first (npm run build)");
  const dir = await tempDir();
  const args = ["serve", "--upstream", "mock", "--port", "0", "--data", dir, "--scan-worker"];
  const child = spawn("node", [`${root}/dist/cli.js`, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line: ${output}`)), 20_000);
      child.stdout.on("data", () => {
        if (/ready/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    const port = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)![1];
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    const { status, node_id } = await health.json();
    assert.deepEqual([status, typeof node_id], ["ok", "string"], "ok, naming the node that answered");
    // A batch input validated on the build's worker thread, then run.
    const form = new FormData();
    form.append("purpose", "batch");
    const lines = Array.from({ length: 50 }, (_, i) => chatLine(`r${i}`));
    form.append("file", new Blob([lines.join("\n")]), "in.jsonl");
    const file = await (await fetch(`http://127.0.0.1:${port}/v1/files`, { method: "POST", body: form })).json();
    const created = await (await fetch(`http://127.0.0.1:${port}/v1/batches`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
    })).json();
    let batch = created;
    for (const until = Date.now() + 60_000; Date.now() < until && !["completed", "failed"].includes(batch.status);) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      batch = await (await fetch(`http://127.0.0.1:${port}/v1/batches/${created.id}`)).json();
    }
    assert.equal(batch.status, "completed", JSON.stringify(batch.errors));
    assert.equal(batch.request_counts.completed, 50);
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.on("close", resolve));
    await removeDir(dir);
  }
});
