/**
 * Downloads are verified as they stream: bytes changed on disk after they were
 * recorded are never served; the response is cut short instead.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import OpenAI, { toFile } from "openai";
import { line } from "../support/engine.ts";
import { eventually, startServer } from "../support/server.ts";
import { ADAPTERS } from "../support/adapters.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

/** Fetches a body as far as it goes: the bytes received, and whether it ended whole. */
async function readAsFarAsItGoes(url: string): Promise<{ bytes: Uint8Array; whole: boolean }> {
  const parts: Uint8Array[] = [];
  let whole = true;
  let response: Response | null = null;
  try {
    // Bun's fetch rejects outright when the connection is cut before the first byte of the body.
    response = await fetch(url);
    for await (const chunk of response.body!) parts.push(chunk);
  } catch {
    whole = false;
  }
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  parts.reduce((at, part) => (bytes.set(part, at), at + part.length), 0);
  return { bytes, whole: whole && bytes.length === Number(response?.headers.get("content-length")) };
}

for (const adapter of ADAPTERS) {
  test(`${adapter.name}: downloads: a file or result changed in storage after it was recorded is cut short, never served changed`, () =>
    adapter.withPlace(async (place) => {
      const server = await startServer(["--upstream", "mock", ...place.serveArgs]);
      try {
        await server.waitFor(/ready/);
        const base = `http://127.0.0.1:${server.port}/v1`;
        const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });

        // An upload of 3 MiB changed in its third MiB: the first stretches may arrive, the changed one never does.
        const original = new Uint8Array(3 * 1024 * 1024).map((_, i) => 97 + (i % 26));
        const file = await client.files.create({ file: await toFile(original, "data.txt"), purpose: "user_data" });
        assert.deepEqual(
          new Uint8Array(await (await fetch(`${base}/files/${file.id}/content`)).arrayBuffer()),
          original,
        );
        await place.flipByte("blobs", `files/${file.id}`, 2.5 * 1024 * 1024);
        const cut = await readAsFarAsItGoes(`${base}/files/${file.id}/content`);
        assert.equal(cut.whole, false, "the download does not end whole");
        assert.ok(
          cut.bytes.length <= 2 * 1024 * 1024,
          `${cut.bytes.length} bytes arrived: none of the changed stretch`,
        );
        assert.deepEqual(cut.bytes, original.subarray(0, cut.bytes.length), "what arrived is the original's");
        await server.waitFor(new RegExp(`file ${file.id} differs from what was recorded`));

        // A batch's output file, changed after the batch ended.
        const ids = Array.from({ length: 50 }, (_, i) => `r${i}`);
        const input = await client.files.create({
          file: await toFile(new TextEncoder().encode(ids.map((id) => line(id, "m")).join("\n")), "in.jsonl"),
          purpose: "batch",
        });
        const created = await client.batches.create({
          input_file_id: input.id,
          endpoint: "/v1/chat/completions",
          completion_window: "24h",
        });
        const done = await eventually(async () => {
          const b = await client.batches.retrieve(created.id);
          return b.status === "completed" && b;
        });
        const before = await (await client.files.content(done.output_file_id!)).text();
        const output = await place.outputOf(done.id);
        await place.flipByte(output.area, output.key, 100);
        const changed = await readAsFarAsItGoes(`${base}/files/${done.output_file_id}/content`);
        assert.equal(changed.whole, false);
        assert.equal(changed.bytes.length, 0, "a result under one stretch long arrives not at all");
        assert.ok(before.length > 100);
      } finally {
        await server.stop();
      }
    }));
}

test("downloads: a file named in any script downloads with its name (RFC 6266 filename*), never a 500", async () => {
  const dir = await tempDir();
  const server = await startServer(["--upstream", "mock", "--data", dir]);
  try {
    await server.waitFor(/ready/);
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: "unused", maxRetries: 0 });
    for (const name of ["отчёт.txt", "数据 2026.txt", "emoji 😀 (v2)'s.txt", "plain name.txt", "café.txt"]) {
      const file = await client.files.create({ file: await toFile(new TextEncoder().encode("x"), name), purpose: "user_data" });
      assert.equal(file.filename, name);
      const response = await fetch(`${server.baseURL}/files/${file.id}/content`);
      assert.equal(response.status, 200, name);
      assert.equal(await response.text(), "x");
      const disposition = response.headers.get("content-disposition")!;
      const encoded = /filename\*=UTF-8''([^;]+)/.exec(disposition)?.[1];
      const ascii = /filename="([^"]*)"/.exec(disposition)?.[1];
      assert.equal(encoded === undefined ? ascii : decodeURIComponent(encoded), name, disposition);
      assert.match(ascii!, /^[\x20-\x7e]*$/, "the plain filename is ASCII for old clients");
    }
  } finally {
    await server.stop();
    await removeDir(dir);
  }
});
