import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, readServeConfig, targetFor } from "../../src/serve_command.ts";
import { ownerOfKey } from "../../src/http/access/auth.ts";

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

test("serve config: an upstream no request could reach, or a key no header could carry, is refused at start", () => {
  const config = readServeConfig(["--upstream", "http://127.0.0.1:8000/v1", "--upstream-key", "sk-a\nb"], {});
  assert.throws(() => targetFor(config), (error: unknown) => error instanceof ConfigError && /--upstream: .*invalid header/.test(error.message));
  assert.equal(readServeConfig(base, {}).maxResponseBytes, 64 * 1024 * 1024);
  assert.equal(readServeConfig([...base, "--max-response-mib", "2"], {}).maxResponseBytes, 2 * 1024 * 1024);
  assert.equal(readServeConfig(base, {}).lockStaleAfterMs, 10_000);
  assert.equal(readServeConfig(base, { BATCHSPOOL_LOCK_STALE_AFTER: "30" }).lockStaleAfterMs, 30_000);
});

test("serve config: a cluster node's name, lease and slice size, from flags or the environment, checked", () => {
  const defaults = readServeConfig(base, {});
  assert.deepEqual([defaults.nodeId, defaults.leaseSeconds, defaults.sliceLines], [undefined, 15, 256]);
  const set = readServeConfig([...base, "--node-id", "node-a.eu:1", "--lease-seconds", "5", "--slice-lines", "100"], {});
  assert.deepEqual([set.nodeId, set.leaseSeconds, set.sliceLines], ["node-a.eu:1", 5, 100]);
  const fromEnv = readServeConfig(base, { BATCHSPOOL_NODE_ID: "b", BATCHSPOOL_LEASE_SECONDS: "30", BATCHSPOOL_SLICE_LINES: "64" });
  assert.deepEqual([fromEnv.nodeId, fromEnv.leaseSeconds, fromEnv.sliceLines], ["b", 30, 64]);
  for (const args of [["--node-id", "a b"], ["--node-id", ""], ["--lease-seconds", "0"], ["--slice-lines", "x"]]) {
    assert.throws(() => readServeConfig([...base, ...args], {}), ConfigError, args.join(" "));
  }
});

test("serve config: --allowed-hosts takes names without ports, or *", () => {
  assert.deepEqual(readServeConfig(base, {}).allowedHosts, []);
  assert.deepEqual(readServeConfig([...base, "--allowed-hosts", "batch.lan, 10.0.0.5,[::1]"], {}).allowedHosts, ["batch.lan", "10.0.0.5", "[::1]"]);
  assert.equal(readServeConfig(base, { BATCHSPOOL_ALLOWED_HOSTS: "*" }).allowedHosts, "*");
  assert.throws(() => readServeConfig([...base, "--allowed-hosts", "batch.lan:8787"], {}), /without ports/);
});

test("serve config: --messages-upstream is auto unless a flag or the environment chooses; anything else is refused", () => {
  assert.equal(readServeConfig(base, {}).messagesUpstream, "auto");
  assert.equal(readServeConfig([...base, "--messages-upstream", "translate"], {}).messagesUpstream, "translate");
  assert.equal(readServeConfig(base, { BATCHSPOOL_MESSAGES_UPSTREAM: "native" }).messagesUpstream, "native");
  assert.throws(
    () => readServeConfig([...base, "--messages-upstream", "anthropic"], {}),
    (error: unknown) => error instanceof ConfigError && /--messages-upstream must be native, translate or auto/.test(error.message),
  );
});

test("serve config: --public-url is an http(s) base URL, kept without its trailing slash", () => {
  assert.equal(readServeConfig(base, {}).publicUrl, undefined);
  assert.equal(readServeConfig([...base, "--public-url", "https://batch.example.com/"], {}).publicUrl, "https://batch.example.com");
  assert.equal(readServeConfig(base, { BATCHSPOOL_PUBLIC_URL: "http://10.0.0.5:8787/spool" }).publicUrl, "http://10.0.0.5:8787/spool");
  for (const bad of ["batch.example.com", "ftp://x", "https://x/?a=1"]) {
    assert.throws(() => readServeConfig([...base, "--public-url", bad], {}), (error: unknown) => error instanceof ConfigError && /--public-url/.test(error.message));
  }
});

test("serve config: --key-weights gives each configured key's owner its weight, and refuses what it cannot use", () => {
  const keys = ["--upstream", "mock", "--api-key", "sk-team-a", "--api-key", "sk-team-b"];
  const config = readServeConfig([...keys, "--key-weights", "sk-team-a=3, sk-team-b=0.5"], {});
  assert.deepEqual([...config.ownerWeights], [[ownerOfKey("sk-team-a"), 3], [ownerOfKey("sk-team-b"), 0.5]]);
  assert.equal(readServeConfig(keys, { BATCHSPOOL_KEY_WEIGHTS: "sk-team-b=2" }).ownerWeights.get(ownerOfKey("sk-team-b")), 2);
  assert.equal(readServeConfig(keys, {}).ownerWeights.size, 0);
  for (const bad of ["sk-team-a", "sk-team-a=0", "sk-team-a=x", "sk-other=2"]) {
    assert.throws(() => readServeConfig([...keys, "--key-weights", bad], {}), (error: Error) =>
      error instanceof ConfigError && /--key-weights/.test(error.message) && !error.message.includes("sk-team-a=") && !error.message.includes("sk-other"));
  }
});

test("serve config: --model-budget rules, in order, from flags and the environment; a wrong one is refused", () => {
  const config = readServeConfig([...base, "--model-budget", "gpt-*=rpm:500,tpm:200000", "--model-budget", "llama=tpm:9000"], {
    BATCHSPOOL_MODEL_BUDGETS: "claude-*=rpm:50; mistral=rpm:5",
  });
  assert.deepEqual(config.modelBudgets, [
    { pattern: "gpt-*", requestsPerMinute: 500, tokensPerMinute: 200000 },
    { pattern: "llama", tokensPerMinute: 9000 },
    { pattern: "claude-*", requestsPerMinute: 50 },
    { pattern: "mistral", requestsPerMinute: 5 },
  ]);
  assert.deepEqual(readServeConfig(base, {}).modelBudgets, []);
  for (const bad of ["gpt-4", "=rpm:5", "gpt=rpm:0", "gpt=rps:5", "gpt=rpm:5,"]) {
    assert.throws(() => readServeConfig([...base, "--model-budget", bad], {}), (error: Error) => error instanceof ConfigError && /--model-budget/.test(error.message));
  }
});

test("serve config: --endpoint adds /v1 paths batches may target, each once; others are refused", () => {
  const config = readServeConfig([...base, "--endpoint", "/v1/rerank", "--endpoint", "/v1/score", "--endpoint", "/v1/chat/completions"], {
    BATCHSPOOL_ENDPOINTS: "/v1/classify, /v1/rerank",
  });
  assert.deepEqual(config.endpoints, ["/v1/rerank", "/v1/score", "/v1/classify"]);
  for (const bad of ["rerank", "/v2/rerank", "/v1/", "/v1//x", "/v1/a/../b", "/v1/a b"]) {
    assert.throws(() => readServeConfig([...base, "--endpoint", bad], {}), (error: Error) => error instanceof ConfigError && /--endpoint/.test(error.message));
  }
});

test("serve config: --upstream routes by model, replicas by repeating a pattern; a routes file stands instead", () => {
  const config = readServeConfig(["--upstream", "llama-*=http://a/v1", "--upstream", "http://b/v1", "--upstream", "llama-*=http://c/v1"], {});
  assert.deepEqual(config.routes, [{ model: "llama-*", urls: ["http://a/v1", "http://c/v1"] }, { urls: ["http://b/v1"] }]);
  const target = targetFor(config);
  assert.equal(target.accepts?.("mistral"), true, "the default route takes every other model");
  assert.equal(readServeConfig([], { BATCHSPOOL_UPSTREAM: "m=mock  mock" }).routes.length, 2);
  assert.throws(
    () => readServeConfig([], {}),
    (error: unknown) => error instanceof ConfigError && /no upstream: pass --upstream/.test(error.message),
  );
  assert.throws(
    () => readServeConfig(["--upstream", "m=ftp://x"], {}),
    (error: unknown) => error instanceof ConfigError && /--upstream must be an http\(s\) URL or "mock"/.test(error.message),
  );
  assert.throws(
    () => readServeConfig(["--upstream", "mock", "--routes-file", "/nonexistent.yaml"], {}),
    (error: unknown) => error instanceof ConfigError && /either with --upstream or in --routes-file/.test(error.message),
  );
  assert.throws(
    () => readServeConfig(["--routes-file", "/nonexistent.yaml"], {}),
    (error: unknown) => error instanceof ConfigError && /--routes-file "\/nonexistent.yaml" cannot be read/.test(error.message),
  );
});

test("serve config: prefix grouping is on unless --no-prefix-grouping or BATCHSPOOL_PREFIX_GROUPING=0", () => {
  assert.equal(readServeConfig(base, {}).prefixGrouping, true);
  assert.equal(readServeConfig([...base, "--no-prefix-grouping"], {}).prefixGrouping, false);
  assert.equal(readServeConfig(base, { BATCHSPOOL_PREFIX_GROUPING: "0" }).prefixGrouping, false);
});
