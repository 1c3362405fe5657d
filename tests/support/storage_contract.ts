/**
 * The storage contract suite: every adapter must pass it.
 * Call `testStorageContract(name, open)` from an adapter's test file.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type BlobHasher, isStorageError, type Storage } from "../../src/storage/mod.ts";
import { sha256Hex } from "../../src/integrity/sha256.ts";
import { concatBytes } from "../../src/shared/concat_bytes.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    total += chunk.length;
  }
  return concatBytes(chunks, total);
}

export async function readText(stream: ReadableStream<Uint8Array>): Promise<string> {
  return decoder.decode(await readAll(stream));
}

function chunkedStream(parts: string[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part));
      controller.close();
    },
  });
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isStorageError(error), `expected a StorageError, got ${error}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** Registers the contract tests for one adapter. `open` returns a fresh, empty storage. */
export function testStorageContract(name: string, open: () => Promise<Storage>): void {
  const withStorage = (title: string, body: (storage: Storage) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const storage = await open();
      try {
        await body(storage);
      } finally {
        await storage.close();
      }
    });

  withStorage("blobs.put() counts and hashes a stream and get() returns the bytes", async (s) => {
    const info = await s.blobs.put("files/a", chunkedStream(["hello ", "wor", "ld"]));
    assert.deepEqual(info, { key: "files/a", bytes: 11, sha256: sha256Hex("hello world") });
    assert.equal(await readText(await s.blobs.get("files/a")), "hello world");
    assert.deepEqual(await s.blobs.stat("files/a"), { key: "files/a", bytes: 11 });
  });

  withStorage("blobs.put() with markEvery also returns the digest of every such prefix", async (s) => {
    const info = await s.blobs.put("files/m", chunkedStream(["hello ", "wor", "ld"]), { markEvery: 4 });
    assert.deepEqual(info, {
      key: "files/m",
      bytes: 11,
      sha256: sha256Hex("hello world"),
      marks: { every: 4, digests: [sha256Hex("hell"), sha256Hex("hello wo")] },
    });
    assert.equal(await readText(await s.blobs.get("files/m")), "hello world");
  });

  withStorage("blobs.put() with a hasher hands it every byte in order, waits when asked, and returns its digest", async (s) => {
    const given: string[] = [];
    let waited = false;
    const hasher: BlobHasher = {
      update(chunk) {
        given.push(decoder.decode(chunk));
        if (given.length !== 2) return undefined;
        return new Promise((resolve) => setTimeout(() => resolve(void (waited = true)), 5));
      },
      // A digest the put cannot have computed itself: the hasher's answer is the one returned.
      finish: () => Promise.resolve({ sha256: "h".repeat(64), bytes: 11, marks: { every: 4, digests: ["m1", "m2"] } }),
    };
    const info = await s.blobs.put("files/h", chunkedStream(["hello ", "wor", "ld"]), { markEvery: 4, hasher });
    assert.deepEqual(given, ["hello ", "wor", "ld"]);
    assert.ok(waited, "the put waited for the hasher before giving it more");
    assert.deepEqual(info, { key: "files/h", bytes: 11, sha256: "h".repeat(64), marks: { every: 4, digests: ["m1", "m2"] } });
    assert.equal(await readText(await s.blobs.get("files/h")), "hello world");
  });

  withStorage("blobs.put() hashes what it wrote when its hasher gives no digest", async (s) => {
    const hasher: BlobHasher = { update: () => undefined, finish: () => Promise.resolve(undefined) };
    const info = await s.blobs.put("files/h2", chunkedStream(["hello ", "wor", "ld"]), { markEvery: 4, hasher });
    assert.deepEqual(info, {
      key: "files/h2",
      bytes: 11,
      sha256: sha256Hex("hello world"),
      marks: { every: 4, digests: [sha256Hex("hell"), sha256Hex("hello wo")] },
    });
  });

  withStorage("blobs.put() fails when its hasher throws, cancels its source, and leaves nothing", async (s) => {
    const failure = new Error("scan failed");
    let cancelled: unknown = null;
    let pulls = 0;
    const source = new ReadableStream<Uint8Array>({
      pull: (controller) => void (pulls++, controller.enqueue(encoder.encode("x"))),
      cancel: (reason) => void (cancelled = reason),
    }, { highWaterMark: 0 });
    let calls = 0;
    const hasher: BlobHasher = {
      update: () => {
        if (++calls === 2) throw failure;
        return undefined;
      },
      finish: () => Promise.resolve(undefined),
    };
    // The hasher's error itself, or an adapter's error caused by it.
    await assert.rejects(
      s.blobs.put("files/h3", source, { hasher }),
      (error) => error === failure || (error as { cause?: unknown }).cause === failure,
    );
    assert.ok(cancelled !== null, "the source was cancelled");
    assert.equal(pulls, 2, "nothing read after the failure");
    assert.equal(await s.blobs.stat("files/h3"), null);
    assert.deepEqual((await s.blobs.list("files/")).keys, []);
  });

  withStorage("blobs.get() honours a byte range", async (s) => {
    await s.blobs.put("files/r", encoder.encode("0123456789"));
    assert.equal(await readText(await s.blobs.get("files/r", { start: 2, end: 5 })), "234");
    assert.equal(await readText(await s.blobs.get("files/r", { start: 7 })), "789");
  });

  withStorage("blobs.put() over maxBytes fails with too_large and leaves nothing", async (s) => {
    await rejectsWithCode(s.blobs.put("files/big", chunkedStream(["12345", "67890"]), { maxBytes: 8 }), "too_large");
    assert.equal(await s.blobs.stat("files/big"), null);
    assert.deepEqual((await s.blobs.list("files/")).keys, []);
  });

  withStorage("blobs: missing keys are not_found on get and null on stat; delete says whether it deleted", async (s) => {
    await rejectsWithCode(s.blobs.get("files/none"), "not_found");
    assert.equal(await s.blobs.stat("files/none"), null);
    await s.blobs.put("files/x", encoder.encode("x"));
    assert.equal(await s.blobs.delete("files/x"), true);
    assert.equal(await s.blobs.delete("files/x"), false);
  });

  withStorage("blobs.list() pages by prefix in key order, forwards and backwards", async (s) => {
    for (const key of ["f/3", "f/1", "f/2", "g/1"]) await s.blobs.put(key, encoder.encode(key));
    assert.deepEqual(await s.blobs.list("f/", { limit: 2 }), { keys: ["f/1", "f/2"], more: true });
    assert.deepEqual(await s.blobs.list("f/", { limit: 2, after: "f/2" }), { keys: ["f/3"], more: false });
    assert.deepEqual(await s.blobs.list("f/", { reverse: true }), { keys: ["f/3", "f/2", "f/1"], more: false });
    assert.deepEqual(await s.blobs.list("", {}), { keys: ["f/1", "f/2", "f/3", "g/1"], more: false });
  });

  withStorage("logs.append() returns offsets, keeps groups in order, and read() streams from an offset", async (s) => {
    const first = await s.logs.append("b/out", ["one", "two"]);
    const second = await s.logs.append("b/out", ["three"]);
    assert.deepEqual(first, { start: 0, end: 8 });
    assert.deepEqual(second, { start: 8, end: 14 });
    assert.equal(await s.logs.length("b/out"), 14);
    assert.equal(await readText(await s.logs.read("b/out")), "one\ntwo\nthree\n");
    assert.equal(await readText(await s.logs.read("b/out", 8)), "three\n");
  });

  withStorage("logs: concurrent appends all land, each group intact", async (s) => {
    const appends = Array.from({ length: 200 }, (_, i) => s.logs.append("b/c", [`${i}-a`, `${i}-b`]));
    const results = await Promise.all(appends);
    const text = await readText(await s.logs.read("b/c"));
    const lines = text.trimEnd().split("\n");
    assert.equal(lines.length, 400);
    for (let i = 0; i < 200; i++) {
      const at = lines.indexOf(`${i}-a`);
      assert.equal(lines[at + 1], `${i}-b`);
      assert.equal(text.slice(results[i].start, results[i].end), `${i}-a\n${i}-b\n`);
    }
  });

  withStorage("logs: an absent log is empty; a record with a newline is refused", async (s) => {
    assert.equal(await s.logs.length("b/none"), 0);
    assert.equal(await readText(await s.logs.read("b/none")), "");
    await rejectsWithCode(s.logs.append("b/x", ["ok", "not\nok"]), "invalid_record");
    assert.equal(await s.logs.length("b/x"), 0);
    assert.equal(await s.logs.delete("b/none"), false);
  });

  withStorage("documents: put() versions from 1, get() returns value and version", async (s) => {
    assert.equal(await s.documents.get("d/1"), null);
    assert.equal(await s.documents.put("d/1", { a: 1 }), 1);
    assert.equal(await s.documents.put("d/1", { a: 2 }), 2);
    assert.deepEqual(await s.documents.get("d/1"), { value: { a: 2 }, version: 2 });
  });

  withStorage("documents: compare-and-swap refuses a stale version with conflict", async (s) => {
    assert.equal(await s.documents.put("d/cas", "first", { ifVersion: 0 }), 1);
    await rejectsWithCode(s.documents.put("d/cas", "again", { ifVersion: 0 }), "conflict");
    assert.equal(await s.documents.put("d/cas", "second", { ifVersion: 1 }), 2);
    await rejectsWithCode(s.documents.put("d/cas", "stale", { ifVersion: 1 }), "conflict");
    await rejectsWithCode(s.documents.delete("d/cas", { ifVersion: 1 }), "conflict");
    assert.deepEqual(await s.documents.get("d/cas"), { value: "second", version: 2 });
  });

  withStorage("documents: of two racing CAS writers exactly one wins", async (s) => {
    await s.documents.put("d/race", 0);
    const attempts = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => s.documents.put("d/race", i + 1, { ifVersion: 1 })),
    );
    assert.equal(attempts.filter((a) => a.status === "fulfilled").length, 1);
    assert.equal((await s.documents.get("d/race"))?.version, 2);
  });

  withStorage("documents: delete and list", async (s) => {
    await s.documents.put("t/a/1", 1);
    await s.documents.put("t/a/2", 2);
    await s.documents.put("t/b/1", 3);
    assert.deepEqual((await s.documents.list("t/a/")).keys, ["t/a/1", "t/a/2"]);
    assert.deepEqual((await s.documents.list("t/", { reverse: true, limit: 2 })), {
      keys: ["t/b/1", "t/a/2"],
      more: true,
    });
    assert.equal(await s.documents.delete("t/a/1"), true);
    assert.equal(await s.documents.delete("t/a/1"), false);
    assert.deepEqual((await s.documents.list("t/a/")).keys, ["t/a/2"]);
  });

  withStorage("invalid keys are refused everywhere with invalid_key", async (s) => {
    for (const key of ["", "../x", "a/../b", "/abs", "a//b", ".hidden", "a/.tmp-1", "nul\0", "ctl\n", "back\\slash"]) {
      await rejectsWithCode(s.blobs.put(key, encoder.encode("x")), "invalid_key");
      await rejectsWithCode(s.logs.append(key, ["x"]), "invalid_key");
      await rejectsWithCode(s.documents.put(key, 1), "invalid_key");
      await rejectsWithCode(s.documents.get(key), "invalid_key");
    }
  });

  test(`${name}: a closed storage refuses calls with closed`, async () => {
    const storage = await open();
    await storage.close();
    await rejectsWithCode(storage.documents.get("d/x"), "closed");
    await rejectsWithCode(storage.logs.append("b/x", ["x"]), "closed");
  });
}
