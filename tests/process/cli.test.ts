import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import type { BatchObject } from "../../src/batch/model/objects.ts";
import { createServer } from "node:http";
import { createApiClient } from "../../src/client/api_client.ts";
import { ProgressView } from "../../src/client/progress_bar.ts";
import { typeScriptCommand } from "../../src/runtime/detect.ts";
import { line } from "../support/engine.ts";
import { CLI, startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";
import { startUpstream } from "../support/upstream.ts";

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

test("cli: retry makes a batch of the failed lines, as written, with retry_of; validation failures cannot be retried", async () => {
  const dir = await tempDir();
  const upstream = await startUpstream();
  // No retries inside a batch: a line whose first attempt fails goes to the error file.
  const server = await startServer(["--upstream", upstream.baseUrl, "--max-retries", "0", "--data", join(dir, "data")]);
  try {
    await server.waitFor(/ready/);
    const env = { OPENAI_BASE_URL: server.baseURL };
    // flaky:1 fails its first attempt only; the odd spacing and the BOM must reach the retry as written.
    const lines = Array.from({ length: 10 }, (_, i) => line(`c${i}`, i === 3 || i === 7 ? "flaky:1" : "ok"));
    lines[7] = lines[7].replace('"method":"POST"', '"method":  "POST"');
    const input = join(dir, "in.jsonl");
    await writeFile(input, "\uFEFF" + lines.join("\r\n"));
    const first = await runCli(["submit", input, "--wait", "--metadata", "team=a", "--out", join(dir, "o1"), "--errors", join(dir, "e1")], env);
    assert.equal(first.code, 0, first.stderr);
    const firstId = first.stdout.trim();
    assert.match(first.stderr, /10\/10 · 8 completed · 2 failed/);

    const retried = await runCli(["retry", firstId, "--wait", "--out", join(dir, "o2"), "--errors", join(dir, "e2")], env);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stderr, /retrying 2 line\(s\) of \S+ without a successful result \(2 [\w-]+\)/);
    const retryId = retried.stdout.trim();
    assert.match(retryId, /^batch_/);
    const status = await runCli(["status", retryId, "--json"], env);
    const batch = JSON.parse(status.stdout) as BatchObject;
    assert.deepEqual(batch.metadata, { team: "a", retry_of: firstId });
    assert.equal(batch.endpoint, "/v1/chat/completions");
    assert.deepEqual(batch.request_counts, { total: 2, completed: 2, failed: 0 });
    const retriedInput = await (await fetch(`${server.baseURL}/files/${batch.input_file_id}/content`)).text();
    assert.equal(retriedInput, `${lines[3]}\n${lines[7]}\n`, "the failed lines, byte for byte");
    const outputs = (await readFile(join(dir, "o2"), "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l).custom_id).sort();
    assert.deepEqual(outputs, ["c3", "c7"]);

    const nothing = await runCli(["retry", retryId], env);
    assert.equal(nothing.code, 0);
    assert.equal(nothing.stdout, "");
    assert.match(nothing.stderr, /no line without a successful result: nothing to retry/);

    const bad = join(dir, "bad.jsonl");
    await writeFile(bad, `${line("v0", "ok")}\nnot json\n`);
    const invalid = await runCli(["submit", bad, "--wait"], env);
    assert.equal(invalid.code, 1, invalid.stderr);
    const refused = await runCli(["retry", invalid.stdout.trim()], env);
    assert.equal(refused.code, 4);
    assert.match(refused.stderr, /failed validation .*line 2: invalid_json_line.*cannot be retried/);
  } finally {
    await server.stop();
    await upstream.close();
    await removeDir(dir);
  }
});

test("client: waits through the event stream where the server has one, and learns when it has none", async () => {
  const dir = await tempDir();
  const server = await startServer(["--upstream", "mock", "--mock-latency", "5", "--data", join(dir, "data")]);
  // A compatible server without the extension: every unknown URL is a 404.
  const plain = createServer((_request, response) => {
    response.writeHead(404, { "content-type": "application/json" });
    response.end(JSON.stringify({ error: { message: "Unknown request URL", type: "invalid_request_error", param: null, code: null } }));
  });
  await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
  try {
    await server.waitFor(/ready/);
    const input = join(dir, "in.jsonl");
    await writeFile(input, Array.from({ length: 20 }, (_, i) => line(`s${i}`, "m")).join("\n"));
    const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
    const file = await api.uploadFile(input, "batch");
    const batch = await api.createBatch({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const events = await api.batchEvents(batch.id, new AbortController().signal);
    assert.ok(events, "batchspool offers the stream");
    const seen: BatchObject[] = [];
    for await (const event of events) seen.push(event);
    assert.equal(seen[seen.length - 1].status, "completed");
    assert.equal(seen[seen.length - 1].request_counts.completed, 20);
    const port = (plain.address() as { port: number }).port;
    const other = createApiClient({ baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: undefined });
    assert.equal(await other.batchEvents(batch.id, new AbortController().signal), null);
  } finally {
    plain.close();
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

test("cli: submit of a file of Anthropic batch requests makes a message batch (detected, or --format anthropic), follows it and saves its results", async () => {
  const dir = await tempDir();
  const upstream = await startUpstream({ messages: true });
  const server = await startServer(["--upstream", upstream.baseUrl, "--data", join(dir, "data"), "--api-key", "sk-cli"]);
  try {
    await server.waitFor(/ready/);
    const input = join(dir, "requests.jsonl");
    const requests = Array.from({ length: 25 }, (_, i) => JSON.stringify({ custom_id: `m${i}`, params: { model: "ok", max_tokens: 8, messages: [{ role: "user", content: `p${i}` }] } }));
    // Blank lines and a CRLF file are what people have.
    await writeFile(input, `\n${requests.slice(0, 10).join("\r\n")}\n\n  \n${requests.slice(10).join("\n")}\n`);
    const out = join(dir, "results.jsonl");
    const env = { OPENAI_BASE_URL: server.baseURL, OPENAI_API_KEY: "sk-cli" };
    const result = await runCli(["submit", input, "--wait", "--out", out], env);
    assert.equal(result.code, 0, result.stderr);
    const id = result.stdout.trim().split("\n")[0];
    assert.match(id, /^msgbatch_/);
    assert.match(result.stderr, /created msgbatch_\S+ from .* \(25 requests\)/);
    assert.match(result.stderr, /0 processing, 25 succeeded, 0 errored, 0 canceled, 0 expired/);
    const results = (await readFile(out, "utf8")).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(results.map((r) => r.custom_id).sort(), requests.map((r) => JSON.parse(r).custom_id).sort());
    assert.ok(results.every((r) => r.result.type === "succeeded" && r.result.message.type === "message"));
    const status = await runCli(["status", id, "--json"], env);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).processing_status, "ended");
    // Told, for a file the first line of which would not say.
    const explicit = await runCli(["submit", input, "--format", "anthropic"], env);
    assert.equal(explicit.code, 0, explicit.stderr);
    assert.match(explicit.stdout, /^msgbatch_/);
    const wrong = await runCli(["submit", input, "--format", "anthropic", "--window", "1h"], env);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /not for Anthropic message batches/);
    await writeFile(input, `${requests[0]}\n${requests[0]}\n`);
    const duplicate = await runCli(["submit", input], env);
    assert.equal(duplicate.code, 4);
    assert.match(duplicate.stderr, /requests\.1\.custom_id: duplicate/);
  } finally {
    await server.stop();
    await upstream.close();
    await removeDir(dir);
  }
});

test("cli: download --follow writes a running batch's results as they are recorded, each once, until it ends", async () => {
  const dir = await tempDir();
  const server = await startServer(["--upstream", "mock", "--mock-latency", "20", "--concurrency", "4", "--data", join(dir, "data")]);
  try {
    await server.waitFor(/ready/);
    const input = join(dir, "in.jsonl");
    await writeFile(input, Array.from({ length: 80 }, (_, i) => line(`f${i}`, "m")).join("\n"));
    const submitted = await runCli(["submit", input, "--base-url", server.baseURL]);
    assert.equal(submitted.code, 0, submitted.stderr);
    const batchId = submitted.stdout.trim().split("\n")[0];
    const out = join(dir, "followed.jsonl");
    const followed = await runCli(["download", batchId, "--follow", "--out", out, "--base-url", server.baseURL]);
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(followed.stderr, /80 results; the batch is completed/);
    const lines = (await readFile(out, "utf8")).trimEnd().split("\n");
    const ids = lines.map((l) => JSON.parse(l).custom_id);
    assert.deepEqual([...ids].sort(), Array.from({ length: 80 }, (_, i) => `f${i}`).sort());
    const api = createApiClient({ baseUrl: server.baseURL, apiKey: undefined });
    const batch = await api.retrieveBatch(batchId);
    const output = (await new Response(await api.fileContent(batch.output_file_id!)).text()).trimEnd().split("\n");
    assert.deepEqual([...lines].sort(), [...output].sort(), "the lines followed are the output file's");
  } finally {
    await server.stop();
    await removeDir(dir);
  }
});
