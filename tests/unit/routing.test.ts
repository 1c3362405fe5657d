import assert from "node:assert/strict";
import { test } from "node:test";
import { RouteConfigError, routesFromArgs, routesFromFile } from "../../src/targets/routing/route_config.ts";
import { ReplicaSet } from "../../src/targets/routing/replica_set.ts";
import { createRoutedTarget } from "../../src/targets/routing/routed_target.ts";
import { type Target, TargetError, type TargetRequest, type TargetResponse } from "../../src/targets/types.ts";
import { ManualClock } from "../support/clock.ts";

test("routesFromArgs: a pattern before `=`, replicas by repeating it, the default route last, a URL's own `=` kept", () => {
  assert.deepEqual(routesFromArgs(["http://fallback/v1?a=b", "llama-*=http://gpu1/v1", "gpt-4o=mock", "llama-*=http://gpu2/v1"]), [
    { model: "llama-*", urls: ["http://gpu1/v1", "http://gpu2/v1"] },
    { model: "gpt-4o", urls: ["mock"] },
    { urls: ["http://fallback/v1?a=b"] },
  ]);
  assert.throws(() => routesFromArgs(["m=ftp://x"]), RouteConfigError);
  assert.throws(() => routesFromArgs(["*=http://x/v1"]), /without a pattern/);
});

test("routesFromFile reads JSON and YAML, keys from the environment, and names what is wrong", () => {
  const yaml = `upstreams:
  - model: "llama-*"
    urls: [http://gpu1/v1, http://gpu2/v1]
    concurrency: 64
    timeout_seconds: 30
  - url: https://api.example/v1
    api_key: env:EXAMPLE_KEY
    rpm: 500
    tpm: 100000
    adaptive: false
`;
  assert.deepEqual(routesFromFile(yaml, { EXAMPLE_KEY: "sk-1" }), [
    { model: "llama-*", urls: ["http://gpu1/v1", "http://gpu2/v1"], concurrency: 64, timeoutMs: 30_000 },
    { urls: ["https://api.example/v1"], apiKey: "sk-1", requestsPerMinute: 500, tokensPerMinute: 100_000, adaptive: false },
  ]);
  assert.deepEqual(routesFromFile('[{"model":"m","url":"mock"}]', {}), [{ model: "m", urls: ["mock"] }]);
  assert.throws(() => routesFromFile('{"upstreams":[{"url":"http://x/v1","concurency":3}]}', {}), /upstream 1 has an unknown field "concurency"/);
  assert.throws(() => routesFromFile('{"upstreams":[{"model":"m"}]}', {}), /needs exactly one of url and urls/);
  assert.throws(() => routesFromFile('{"upstreams":[{"url":"http://a/v1"},{"url":"http://b/v1"}]}', {}), /at most one is the default/);
  assert.throws(() => routesFromFile('{"upstreams":[{"url":"http://a/v1","api_key":"env:NOPE"}]}', {}), /NOPE, which is not set/);
  assert.throws(() => routesFromFile('{"upstreams":[{"url":"http://a/v1","concurrency":0}]}', {}), /concurrency must be a positive integer/);
  assert.throws(() => routesFromFile("{ not: [json", {}), /neither JSON nor YAML/);
});

const fakeTarget = (name: string): Target => ({ description: name, send: () => Promise.reject(new Error("unused")) });

test("ReplicaSet spreads requests over the least loaded replicas", () => {
  const replicas = new ReplicaSet([["a", fakeTarget("a")], ["b", fakeTarget("b")]], new ManualClock());
  const first = replicas.pick(new Set())!;
  replicas.started(first);
  const second = replicas.pick(new Set())!;
  assert.notEqual(second, first, "the idle replica goes next");
  replicas.started(second);
  replicas.finished(first, true);
  assert.equal(replicas.pick(new Set()), first);
});

test("ReplicaSet: a replica that fails three times in a row is out until a probe succeeds; a failed probe doubles its wait", async () => {
  const clock = new ManualClock();
  const replicas = new ReplicaSet([["bad", fakeTarget("bad")], ["good", fakeTarget("good")]], clock, { cooldownMs: 1_000 });
  const [bad, good] = replicas.replicas;
  for (let i = 0; i < 3; i++) {
    replicas.started(bad);
    replicas.finished(bad, false);
  }
  assert.equal(replicas.states()[0].breaker, "open");
  for (let i = 0; i < 5; i++) assert.equal(replicas.pick(new Set()), good, "nothing goes to a replica that is out");
  await clock.advance(1_000);
  assert.equal(replicas.states()[0].breaker, "half-open");
  const probe = replicas.pick(new Set([good]))!;
  assert.equal(probe, bad);
  replicas.started(bad);
  assert.equal(replicas.pick(new Set([good])), bad, "only one probe at a time: with the others tried, the one due soonest");
  replicas.finished(bad, false);
  assert.equal(replicas.states()[0].retryInMs, 2_000, "a failed probe doubles the wait");
  await clock.advance(2_000);
  replicas.started(bad);
  replicas.finished(bad, true);
  assert.equal(replicas.states()[0].breaker, "closed");
  assert.equal(replicas.states()[0].failuresInARow, 0);
});

const ok: TargetResponse = { status: 200, body: { ok: true }, requestId: null, retryAfterMs: null, json: true };
const request = (model?: string): TargetRequest => ({ url: "/v1/chat/completions", bodyText: "{}", signal: new AbortController().signal, model });

test("createRoutedTarget: a line goes by its model; a replica that cannot be reached passes it to another at once", async () => {
  const sent: string[] = [];
  const targetOf = (url: string): Target => ({
    description: url,
    send: (req) => {
      sent.push(`${url} ${req.model}`);
      if (url === "http://down/v1") return Promise.reject(new TargetError("connection_error", "refused"));
      return Promise.resolve(ok);
    },
  });
  const target = createRoutedTarget({
    routes: [{ model: "llama-*", urls: ["http://down/v1", "http://up/v1"], concurrency: 4 }, { model: "gpt-4o", urls: ["http://gpt/v1"] }],
    targetOf,
  });
  assert.equal(target.accepts!("llama-3"), true);
  assert.equal(target.accepts!("mistral"), false);
  assert.deepEqual(target.upstreamOf!("llama-3"), { id: "llama-*", concurrency: 4, requestsPerMinute: undefined, tokensPerMinute: undefined, adaptive: undefined });
  for (let i = 0; i < 4; i++) assert.equal((await target.send(request("llama-3"))).status, 200);
  assert.equal((await target.send(request("gpt-4o"))).status, 200);
  assert.equal(sent.filter((line) => line.startsWith("http://up/v1")).length, 4, "every llama line answered by the live replica");
  assert.ok(sent.filter((line) => line.startsWith("http://down/v1")).length <= 3, "the dead replica is out after three refusals");
  assert.deepEqual(sent.filter((line) => line.startsWith("http://gpt/v1")), ["http://gpt/v1 gpt-4o"]);
  const before = sent.length;
  const unknown = await target.send(request("mistral"));
  assert.equal(unknown.status, 404);
  assert.equal((unknown.body.error as { code: string }).code, "model_not_found");
  assert.equal(sent.length, before, "a model no route serves is not sent anywhere");
});
