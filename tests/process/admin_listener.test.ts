/**
 * `/metrics` and `/cluster` take no key and name every tenant's batches: a
 * server bound to a public address serves them only on its admin listener.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

test("admin listener: on a public address the operator's routes are served only on --admin-port", async () => {
  const dir = await tempDir();
  const bare = await startServer(["--upstream", "mock", "--data", `${dir}/a`, "--host", "0.0.0.0", "--api-key", "sk-a"]);
  const withAdmin = await startServer(["--upstream", "mock", "--data", `${dir}/b`, "--host", "0.0.0.0", "--api-key", "sk-a", "--admin-port", "0"]);
  try {
    await bare.waitFor(/ready/);
    await withAdmin.waitFor(/ready/);
    const api = (server: typeof bare, path: string) => fetch(`http://127.0.0.1:${server.port}${path}`).then((r) => r.status);
    for (const path of ["/metrics", "/cluster"]) {
      assert.equal(await api(bare, path), 404, path);
      assert.equal(await api(withAdmin, path), 404, path);
    }
    assert.match(bare.output(), /not served on a public address; give --admin-port/);
    const adminPort = Number(/admin \(\/metrics, \/cluster\) listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(withAdmin.output())![1]);
    const metrics = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^batchspool_/m);
    const cluster = await (await fetch(`http://127.0.0.1:${adminPort}/cluster`)).json();
    assert.equal(cluster.object, "cluster");
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/health`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/v1/files`)).status, 404, "the API is not on the admin listener");
    assert.equal((await fetch(`http://127.0.0.1:${withAdmin.port}/v1/files`, { headers: { authorization: "Bearer sk-a" } })).status, 200);
  } finally {
    await bare.stop();
    await withAdmin.stop();
    await removeDir(dir);
  }
});
