/**
 * A real server without API keys, reached as a web page would reach it: by a
 * rebound name (its Host header) and by a cross-site form post.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { test } from "node:test";
import { startServer } from "../support/server.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

/** A request with the Host header a browser would send for `host` (fetch may not set it). */
function requestAs(port: number, host: string, method = "GET", headers: Record<string, string> = {}, body = ""): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/v1/files", method, headers: { host, ...headers } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("browser attacks: a keyless server refuses a rebound host name and a cross-site form, unless told the name", async () => {
  const dir = await tempDir();
  const server = await startServer(["--upstream", "mock", "--data", dir]);
  const named = await startServer(["--upstream", "mock", "--data", `${dir}-named`, "--allowed-hosts", "batch.lan"]);
  try {
    await server.waitFor(/ready/);
    await named.waitFor(/ready/);
    assert.equal(await requestAs(server.port, `rebound.attacker.example:${server.port}`), 403);
    assert.equal(await requestAs(server.port, `localhost:${server.port}`), 200);
    assert.equal(await requestAs(named.port, `batch.lan:${named.port}`), 200);
    assert.equal(await requestAs(named.port, `other.lan:${named.port}`), 403);

    const boundary = "----form";
    const form = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nfill the disk\r\n--${boundary}--\r\n`;
    const headers = { "content-type": `multipart/form-data; boundary=${boundary}`, origin: "https://attacker.example" };
    assert.equal(await requestAs(server.port, `127.0.0.1:${server.port}`, "POST", headers, form), 403);
    const files = await (await fetch(`${server.baseURL}/files`)).json();
    assert.equal(files.data.length, 0, "the form stored nothing");
    const { origin: _, ...fromClient } = headers;
    assert.equal(await requestAs(server.port, `127.0.0.1:${server.port}`, "POST", fromClient, form), 200);
  } finally {
    await server.stop();
    await named.stop();
    await removeDir(dir);
    await removeDir(`${dir}-named`);
  }
});
