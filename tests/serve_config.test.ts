import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, readServeConfig } from "../src/serve_command.ts";

const base = ["--upstream", "mock"];

test("serve config: the scan worker is the runtime's default unless a flag or the environment chooses", () => {
  assert.equal(readServeConfig(base, {}).scanWorker, undefined);
  assert.equal(readServeConfig([...base, "--scan-worker"], {}).scanWorker, true);
  assert.equal(readServeConfig([...base, "--no-scan-worker"], {}).scanWorker, false);
  assert.equal(readServeConfig(base, { BATCHSPOOL_SCAN_WORKER: "1" }).scanWorker, true);
  assert.equal(readServeConfig(base, { BATCHSPOOL_SCAN_WORKER: "0" }).scanWorker, false);
  assert.equal(readServeConfig(base, { BATCHSPOOL_SCAN_WORKER: "" }).scanWorker, undefined);
  // A flag wins over the environment.
  assert.equal(readServeConfig([...base, "--no-scan-worker"], { BATCHSPOOL_SCAN_WORKER: "1" }).scanWorker, false);
});

test("serve config: contradictory or unreadable scan-worker choices are refused", () => {
  assert.throws(() => readServeConfig([...base, "--scan-worker", "--no-scan-worker"], {}), ConfigError);
  assert.throws(
    () => readServeConfig(base, { BATCHSPOOL_SCAN_WORKER: "maybe" }),
    (error: unknown) => error instanceof ConfigError && /BATCHSPOOL_SCAN_WORKER/.test(error.message),
  );
});
