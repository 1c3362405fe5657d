/**
 * A server without API keys, as a web page would attack it: through a name
 * it points at 127.0.0.1 (DNS rebinding), or with a form posted from its own
 * site. Both are refused; SDKs and command-line clients are not affected.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { makeTestApp } from "../support/app.ts";

const upload = () => {
  const form = new FormData();
  form.append("purpose", "user_data");
  form.append("file", new Blob(["hello"]), "a.txt");
  return form;
};

test("browser guard: without keys, only the server's own host names are answered", async () => {
  const t = await makeTestApp({ browserGuard: { allowedHosts: ["127.0.0.1", "batch.internal"] } });
  try {
    for (const host of ["127.0.0.1:8787", "localhost:8787", "[::1]:8787", "127.0.0.2", "batch.internal:8787", "BATCH.internal"]) {
      assert.equal((await t.app.request(`http://${host}/v1/files`)).status, 200, host);
    }
    for (const host of ["rebound.attacker.example:8787", "0.0.0.0:8787", "batch.internal.attacker.example"]) {
      const response = await t.app.request(`http://${host}/v1/files`);
      assert.equal(response.status, 403, host);
      const body = await response.json();
      assert.equal(body.error.code, "forbidden");
      assert.match(body.error.message, /--allowed-hosts/);
    }
  } finally {
    await t.close();
  }
});

test("browser guard: without keys, another site cannot change anything; same-origin pages and clients can", async () => {
  const t = await makeTestApp({ browserGuard: { allowedHosts: [] } });
  try {
    const post = (headers: Record<string, string>) =>
      t.app.request("http://127.0.0.1:8787/v1/files", { method: "POST", body: upload(), headers });
    const crossSite: Record<string, string>[] = [
      { origin: "https://attacker.example" },
      { origin: "null" },
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site", origin: "http://127.0.0.1:9999" },
    ];
    for (const headers of crossSite) {
      assert.equal((await post(headers)).status, 403, JSON.stringify(headers));
    }
    assert.equal((await t.app.request("http://127.0.0.1:8787/v1/files")).status, 200);
    const listed = await (await t.app.request("http://127.0.0.1:8787/v1/files")).json();
    assert.equal(listed.data.length, 0, "nothing refused was stored");
    assert.equal((await post({})).status, 200, "a client without browser headers");
    assert.equal((await post({ origin: "http://127.0.0.1:8787", "sec-fetch-site": "same-origin" })).status, 200, "the server's own page");
    const del = await t.app.request("http://127.0.0.1:8787/v1/files/file-x", { method: "DELETE", headers: { origin: "https://attacker.example" } });
    assert.equal(del.status, 403);
  } finally {
    await t.close();
  }
});

test("browser guard: \"*\" answers any host; with keys there is no guard", async () => {
  const any = await makeTestApp({ browserGuard: { allowedHosts: "*" } });
  const keyed = await makeTestApp({ apiKeys: ["sk-a"] });
  try {
    assert.equal((await any.app.request("http://anything.example/v1/files")).status, 200);
    const response = await keyed.app.request("http://anything.example/v1/files", { headers: { authorization: "Bearer sk-a", origin: "https://x.example" } });
    assert.equal(response.status, 200);
  } finally {
    await any.close();
    await keyed.close();
  }
});
