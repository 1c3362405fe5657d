import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { OffThreadScanner } from "../../src/batch/input/off_thread_scan.ts";
import { MarkingSha256 } from "../../src/integrity/digest_marks.ts";
import { DEFAULT_VALIDATION_LIMITS, InputScanner } from "../../src/batch/input/validation.ts";
import { currentRuntime } from "../../src/runtime/detect.ts";
import { ManualClock } from "../support/clock.ts";

/** Node cannot load TypeScript in a worker: there the npm build's worker (built by `npm test`) is used. */
const workerUrl = () =>
  currentRuntime() === "node" ? new URL("../../dist/src/batch/input/scan_worker.js", import.meta.url) : undefined;

const encoder = new TextEncoder();
const line = (i: number, url = "/v1/chat/completions") =>
  JSON.stringify({ custom_id: `r${i}`, method: "POST", url, body: { model: "m", messages: [{ role: "user", content: "é".repeat(i % 7) }] } });

function sample(): Uint8Array {
  const lines = Array.from({ length: 3000 }, (_, i) => line(i));
  lines[10] = "{not json";
  lines[20] = line(5); // duplicate custom_id
  lines[30] = line(30, "/v1/embeddings");
  lines[40] = JSON.stringify({ custom_id: "x", method: "GET", url: "/v1/chat/completions", body: {} });
  return encoder.encode(lines.join("\r\n") + "\n");
}

test("OffThreadScanner: a scan (and hash) on the worker equals one in this thread, whatever the chunking", async () => {
  const bytes = sample();
  const local = new InputScanner(DEFAULT_VALIDATION_LIMITS);
  local.push(bytes);
  const expected = local.finish();
  const expectedDigest = new MarkingSha256(4096).update(bytes).finish();
  const scanner = new OffThreadScanner({ workerUrl: workerUrl() });
  try {
    for (const size of [1 << 20, 4093, 17]) {
      const session = scanner.start(DEFAULT_VALIDATION_LIMITS, size === 17 ? undefined : 4096);
      assert.ok(session, "a worker runs here");
      for (let at = 0; at < bytes.length; at += size) await session.push(bytes.subarray(at, at + size));
      const { scan, digest } = await session.finish();
      assert.deepEqual(scan, expected, `chunks of ${size}`);
      assert.deepEqual(digest, size === 17 ? undefined : expectedDigest, `the digest, chunks of ${size}`);
      assert.deepEqual(await session.finish(), { scan, digest }, "asked again, the same answer");
    }
    assert.equal(expected.errors.length, 3);
  } finally {
    await scanner.close();
  }
});

test("OffThreadScanner: an upload far ahead of the worker is held back, and nothing is lost", async () => {
  const scanner = new OffThreadScanner({ workerUrl: workerUrl() });
  try {
    const session = scanner.start({ ...DEFAULT_VALIDATION_LIMITS, maxRequests: 1_000_000 })!;
    const text: string[] = [];
    let size = 0;
    for (let i = 0; size < 20 * 1024 * 1024; i++) {
      text.push(line(i));
      size += text[i].length + 1;
    }
    const lines = text.length;
    const big = encoder.encode(text.join("\n"));
    let heldBack = 0;
    for (let at = 0; at < big.length; at += 1 << 20) {
      const wait = session.push(big.subarray(at, at + (1 << 20)));
      if (wait) {
        heldBack++;
        await wait;
      }
    }
    const { scan } = await session.finish();
    assert.ok(heldBack > 0, "push asked the sender to wait");
    assert.equal(scan?.requests, lines);
    assert.deepEqual(scan?.errors, []);
  } finally {
    await scanner.close();
  }
});

test("OffThreadScanner: a worker that cannot start gives no scan (or none at all), never a hang", async () => {
  const scanner = new OffThreadScanner({ workerUrl: new URL("./no_such_worker.js", import.meta.url) });
  try {
    const session = scanner.start(DEFAULT_VALIDATION_LIMITS);
    if (session) {
      await session.push(sample());
      assert.deepEqual(await session.finish(), { scan: undefined, digest: undefined });
    }
    assert.equal(scanner.start(DEFAULT_VALIDATION_LIMITS), null, "later uploads scan in their own thread");
  } finally {
    await scanner.close();
  }
});

test("OffThreadScanner: scans close together share a worker; after a second without one it is stopped", async () => {
  const clock = new ManualClock();
  const scanner = new OffThreadScanner({ workerUrl: new URL("../support/fixtures/counting_scan_worker.mjs", import.meta.url), clock });
  const scanOnce = async () => {
    const session = scanner.start(DEFAULT_VALIDATION_LIMITS);
    assert.ok(session, "a worker runs here");
    await session.push(sample());
    return (await session.finish()).scan as unknown as { worker: string; scans: number };
  };
  try {
    const first = await scanOnce();
    const second = await scanOnce();
    await clock.advance(999);
    const stillWarm = await scanOnce();
    await clock.advance(1_000);
    const third = await scanOnce();
    assert.equal(second.worker, first.worker, "the second scan, at once, ran on the first one's worker");
    assert.deepEqual([first.scans, second.scans], [1, 2]);
    assert.equal(stillWarm.worker, first.worker, "a scan within the idle second reuses it too");
    assert.notEqual(third.worker, first.worker, "the idle worker was stopped");
    assert.equal(third.scans, 1, "the third scan ran on a fresh worker");
  } finally {
    await scanner.close();
  }
});

test("off-thread scan: Deno with no permissions, where no worker can start, falls back quietly", async () => {
  const deno = fileURLToPath(new URL("../../node_modules/.bin/deno", import.meta.url));
  const fixture = fileURLToPath(new URL("../support/fixtures/embed_without_permissions.ts", import.meta.url));
  const child = spawn(deno, ["run", "--quiet", fixture], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  assert.equal(code, 0, output);
  assert.match(output, /batch completed \{"total":1,"completed":1,"failed":0\}/);
  assert.doesNotMatch(output, /Uncaught|error/i);
});
