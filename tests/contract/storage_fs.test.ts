import assert from "node:assert/strict";
import { appendFile, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { sealEnvelope } from "../../src/integrity/envelope.ts";
import { sha256Hex } from "../../src/integrity/sha256.ts";
import { dataFolderOf } from "../../src/storage/fs/fs_storage.ts";
import { writevFully } from "../../src/storage/fs/paths.ts";
import { createFsStorage, createMemoryStorage, isStorageError, type Storage } from "../../src/storage/mod.ts";
import { fsArea, logSegmentFile } from "../support/fs_layout.ts";
import { readText, testStorageContract } from "../support/storage_contract.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

testStorageContract("fs", async () => {
  const dir = await tempDir();
  const storage = await createFsStorage({ dir });
  return {
    ...storage,
    kind: storage.kind,
    close: async () => {
      await storage.close();
      await removeDir(dir);
    },
  } satisfies Storage;
});

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await body(dir);
  } finally {
    await removeDir(dir);
  }
}

test("fs: a large blob put from chunks of every size lands byte for byte (several writes in flight)", () =>
  withDir(async (dir) => {
    const storage = await createFsStorage({ dir });
    try {
      const total = 5 * 1024 * 1024 + 12_345;
      const bytes = new Uint8Array(total);
      for (let i = 0; i < total; i++) bytes[i] = (i * 7 + (i >> 13)) % 256;
      // Runs of 100 one-byte chunks (joined before writing) between chunks of odd sizes up to 300 kB.
      const sizes = [65_536, 1, 1, 1, 4093, 65_536, 17, 300_001];
      const source = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let at = 0, i = 0; at < total; i++) {
            const size = i % 200 < 100 ? 1 : sizes[i % sizes.length];
            controller.enqueue(bytes.slice(at, at + size));
            at += size;
          }
          controller.close();
        },
      });
      const info = await storage.blobs.put("files/large", source);
      assert.deepEqual(info, { key: "files/large", bytes: total, sha256: sha256Hex(bytes) });
      assert.deepEqual(new Uint8Array(await readFile(await fsArea(dir, "blobs", "files", "large"))), bytes);
    } finally {
      await storage.close();
    }
  }));

test("writevFully: a partial write is continued from the byte where it stopped", async () => {
  const file = new Uint8Array(40);
  const calls: string[] = [];
  // A real file cannot be made to write partially on demand; this handle writes at most 7 bytes a call.
  const handle = {
    write(buffer: Uint8Array, offset: number, length: number, position: number) {
      calls.push(`write@${position}`);
      return this.vectored([buffer.subarray(offset, offset + length)], position);
    },
    writev(buffers: Uint8Array[], position: number) {
      calls.push(`writev@${position}`);
      return this.vectored(buffers, position);
    },
    vectored(buffers: Uint8Array[], position: number) {
      let written = 0;
      for (const buffer of buffers) {
        const take = Math.min(buffer.length, 7 - written);
        file.set(buffer.subarray(0, take), position + written);
        written += take;
        if (written === 7) break;
      }
      return Promise.resolve({ bytesWritten: written });
    },
  };
  const parts = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(10).fill(4), new Uint8Array([5, 6, 7, 8, 9])];
  await writevFully(handle, parts, 20);
  assert.deepEqual([...file.subarray(20, 38)], [1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6, 7, 8, 9]);
  // The last call has one part left: a plain positional write.
  assert.deepEqual(calls, ["writev@20", "writev@27", "write@34"]);
  assert.deepEqual([...file.subarray(0, 20)], new Array(20).fill(0), "nothing before the position");
});

test("fs: concurrent readers never see a torn document", () =>
  withDir(async (dir) => {
    const storage = await createFsStorage({ dir });
    const big = (i: number) => ({ i, filler: "x".repeat(200_000 + i) });
    await storage.documents.put("d/hot", big(0));
    let writing = true;
    const writer = (async () => {
      for (let i = 1; i <= 30; i++) await storage.documents.put("d/hot", big(i));
      writing = false;
    })();
    let reads = 0;
    const readers = Array.from({ length: 3 }, async () => {
      while (writing) {
        const doc = await storage.documents.get<{ i: number; filler: string }>("d/hot");
        assert.ok(doc);
        assert.equal(doc.value.filler.length, 200_000 + doc.value.i);
        reads++;
      }
    });
    await Promise.all([writer, ...readers]);
    assert.ok(reads > 0);
    await storage.close();
  }));

test("fs: temp files are never listed and are removed on open", () =>
  withDir(async (dir) => {
    let storage = await createFsStorage({ dir });
    await storage.documents.put("t/a", 1);
    await storage.blobs.put("f/a", new Uint8Array([1]));
    await storage.close();
    await writeFile(await fsArea(dir, "docs", ".tmp", "crashed"), "partial");
    await writeFile(await fsArea(dir, "blobs", ".tmp", "crashed"), "partial");
    storage = await createFsStorage({ dir });
    assert.deepEqual(await readdir(await fsArea(dir, "docs", ".tmp")), []);
    assert.deepEqual(await readdir(await fsArea(dir, "blobs", ".tmp")), []);
    assert.deepEqual((await storage.documents.list("t/")).keys, ["t/a"]);
    assert.deepEqual((await storage.blobs.list("")).keys, ["f/a"]);
    assert.deepEqual(await readdir(await fsArea(dir, "docs", "t")), ["a.json"]);
    assert.deepEqual(await readdir(await fsArea(dir, "blobs", "f")), ["a"]);
    await storage.close();
  }));

test("fs: a key can never reach outside the data directory", () =>
  withDir(async (dir) => {
    const storage = await createFsStorage({ dir: join(dir, "data") });
    for (const key of ["../escape", "a/../../escape", "/tmp/escape"]) {
      await assert.rejects(storage.blobs.put(key, new Uint8Array([1])), (e) => isStorageError(e, "invalid_key"));
    }
    assert.deepEqual((await readdir(dir)).sort(), ["data"]);
    await storage.close();
  }));

test("fs: a torn log tail is cut away on open and appends continue cleanly", () =>
  withDir(async (dir) => {
    let storage = await createFsStorage({ dir });
    await storage.logs.append("b/out", ['{"n":1}', '{"n":2}']);
    await storage.close();
    const segment = await logSegmentFile(dir, "b/out");
    await appendFile(segment.path, '{"n":3,"tor');
    storage = await createFsStorage({ dir });
    assert.equal(await storage.logs.length("b/out"), 16);
    await storage.logs.append("b/out", ['{"n":3}']);
    assert.equal(await readText(await storage.logs.read("b/out")), '{"n":1}\n{"n":2}\n{"n":3}\n');
    assert.equal((await stat(segment.path)).size, segment.recordsStart + 24);
    await storage.close();
  }));

test("fs: a log torn inside its only record becomes empty", () =>
  withDir(async (dir) => {
    await writeFile(join(dir, "placeholder"), "");
    let storage = await createFsStorage({ dir });
    await storage.close();
    // A log of an earlier version (one file, no segments), torn.
    await writeFile(await fsArea(dir, "logs", "only"), "x".repeat(100_000));
    storage = await createFsStorage({ dir });
    assert.equal(await storage.logs.length("only"), 0);
    await storage.close();
  }));

test("fs: a crash between temp write and rename leaves the old document intact", () =>
  withDir(async (dir) => {
    let storage = await createFsStorage({ dir });
    await storage.documents.put("batches/b1", { status: "in_progress" });
    await storage.close();
    // The crashed state: the new version was written to a temp file, never renamed.
    await writeFile(await fsArea(dir, "docs", ".tmp", "0001"), sealEnvelope({ version: 2, value: { status: "completed" } }));
    storage = await createFsStorage({ dir });
    assert.deepEqual(await storage.documents.get("batches/b1"), { value: { status: "in_progress" }, version: 1 });
    assert.deepEqual(await readdir(await fsArea(dir, "docs", "batches")), ["b1.json"]);
    assert.deepEqual(await readdir(await fsArea(dir, "docs", ".tmp")), []);
    await storage.close();
  }));

test("fs: a document that fails its hash is reported as corrupt, not returned", () =>
  withDir(async (dir) => {
    const storage = await createFsStorage({ dir });
    await storage.documents.put("d/x", { amount: 10 });
    const path = await fsArea(dir, "docs", "d", "x.json");
    await writeFile(path, (await readFile(path, "utf8")).replace('"amount":10', '"amount":99'));
    await assert.rejects(storage.documents.get("d/x"), (e) => isStorageError(e, "corrupt"));
    await writeFile(path, (await readFile(path, "utf8")).slice(0, 40));
    await assert.rejects(storage.documents.get("d/x"), (e) => isStorageError(e, "corrupt"));
    await assert.rejects(storage.documents.put("d/x", 1, { ifVersion: 1 }), (e) => isStorageError(e, "corrupt"));
    assert.equal(await storage.documents.put("d/x", { amount: 11 }), 1);
    await storage.close();
  }));


test("fs: document listings kept in memory agree with a fresh walk of the folders, whatever was written or deleted", () =>
  withDir(async (dir) => {
    const storage = await createFsStorage({ dir });
    const reference = createMemoryStorage();
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
    const folders = ["a", "a/b", "a/b/c", "t", "t/x", "u"];
    const names = ["0", "1", "10", "2", "a", "a-1", "b", "batch_01", "z"];
    const prefixes = ["a/", "a/b/", "a/b/c/", "t/", "t/x/", "u/", "v/"];
    const afters = [undefined, "a", "a/", "a/b", "a/b/1", "a/c", "t/1", "t/x/z", "u/b", "zz", "0"];
    for (let step = 0; step < 400; step++) {
      const key = `${pick(folders)}/${pick(names)}`;
      if (next() < 0.7) {
        await storage.documents.put(key, step);
        await reference.documents.put(key, step);
      } else {
        assert.equal(await storage.documents.delete(key), await reference.documents.delete(key));
      }
      // Ask often, so that folders are read early and then kept current by the writes.
      for (let ask = 0; ask < 3; ask++) {
        const prefix = pick(prefixes);
        const options = { after: pick(afters), limit: 1 + Math.floor(next() * 5), reverse: next() < 0.5 };
        assert.deepEqual(
          await storage.documents.list(prefix, options),
          await reference.documents.list(prefix, options),
          `step ${step}: list(${prefix}, ${JSON.stringify(options)})`,
        );
      }
    }
    // A store opened afresh (reading each folder anew) lists the same.
    await storage.close();
    const reopened = await createFsStorage({ dir });
    for (const prefix of prefixes) {
      assert.deepEqual(await reopened.documents.list(prefix), await reference.documents.list(prefix));
    }
    await reopened.close();
  }));

test("fs: a data directory of an earlier version (areas at its top, plain log files) is moved into its data folder and cleaned once", () =>
  withDir(async (dir) => {
    let storage = await createFsStorage({ dir });
    await storage.documents.put("t/a", 1);
    await storage.blobs.put("f/a", new Uint8Array([1]));
    await storage.logs.append("b/out", ['{"n":1}', '{"n":2}']);
    await storage.close();
    // As an earlier version left it after a crash: its areas at the top, each log one plain file, temp
    // files beside their targets, and no layout file.
    const folder = await dataFolderOf(dir);
    const segment = await logSegmentFile(dir, "b/out");
    await writeFile(join(folder, "logs", "b", "out"), (await readFile(segment.path)).subarray(segment.recordsStart));
    await rm(segment.path);
    await rm(join(folder, "layout.json"));
    for (const area of ["blobs", "logs", "docs"]) await rename(join(folder, area), join(dir, area));
    await rm(folder, { recursive: true });
    await writeFile(join(dir, "docs", "t", ".tmp-crashed"), "partial");
    await writeFile(join(dir, "blobs", "f", ".tmp-crashed"), "partial");
    storage = await createFsStorage({ dir });
    assert.deepEqual((await readdir(dir)).sort(), ["batchspool.lock", "data-1"]);
    assert.deepEqual(await readdir(await fsArea(dir, "docs", "t")), ["a.json"]);
    assert.deepEqual(await readdir(await fsArea(dir, "blobs", "f")), ["a"]);
    assert.deepEqual(JSON.parse(await readFile(join(dir, "data-1", "layout.json"), "utf8")), { tempFolders: true });
    assert.deepEqual((await storage.documents.get("t/a"))?.value, 1);
    // The earlier version's log is read as it was, and appended to in a segment of this epoch.
    assert.equal(await readText(await storage.logs.read("b/out")), '{"n":1}\n{"n":2}\n');
    await storage.logs.append("b/out", ['{"n":3}']);
    assert.equal(await readText(await storage.logs.read("b/out", 8)), '{"n":2}\n{"n":3}\n');
    await storage.close();
  }));
