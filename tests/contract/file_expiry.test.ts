/**
 * Expired files are found through an index ordered by expiry: a sweep reads
 * only what has expired, however many files there are.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createFileService, type FileService } from "../../src/batch/files/file_service.ts";
import { fileDocKey } from "../../src/batch/model/storage_keys.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";
import { ManualClock } from "../support/clock.ts";

/** Memory storage that counts the file records it reads. */
function countingStorage(): { storage: Storage; recordReads: () => number } {
  const base = createMemoryStorage();
  let reads = 0;
  const storage: Storage = {
    ...base,
    documents: {
      ...base.documents,
      get: (key) => {
        if (key.startsWith("tenants/")) reads++;
        return base.documents.get(key);
      },
    },
  };
  return { storage, recordReads: () => reads };
}

async function upload(files: FileService, expiresAfterSeconds?: number) {
  const received = await files.receive({ owner: "default", filename: "f.txt", purpose: "user_data", content: new Uint8Array([1]) });
  return await files.commit(received, { purpose: "user_data", expiresAfterSeconds });
}

test("file expiry: a sweep reads only the records that expired, and removes them", async () => {
  const clock = new ManualClock();
  const { storage, recordReads } = countingStorage();
  const files = createFileService(storage, { clock });
  await files.sweepExpired(); // builds the (empty) index
  const lasting = await Promise.all(Array.from({ length: 200 }, () => upload(files)));
  const soon = await upload(files, 3600);
  const sooner = await upload(files, 3600);
  const later = await upload(files, 7200);
  await clock.advance(3601_000);
  const before = recordReads();
  assert.equal(await files.sweepExpired(), 2);
  assert.equal(recordReads() - before, 2, "the two expired records, nothing else");
  for (const gone of [soon, sooner]) {
    assert.equal((await storage.documents.get(fileDocKey("default", gone.id))), null);
    assert.equal(await storage.blobs.stat(`files/${gone.id}`), null);
  }
  assert.ok(await storage.documents.get(fileDocKey("default", later.id)));
  assert.ok(await storage.documents.get(fileDocKey("default", lasting[0].id)));
  await clock.advance(3600_000);
  assert.equal(await files.sweepExpired(), 1);
  assert.equal((await files.list("default", {})).data.length, 200);
});

test("file expiry: files recorded before the index existed are indexed by the first sweep", async () => {
  const clock = new ManualClock();
  const storage = createMemoryStorage();
  const files = createFileService(storage, { clock });
  const file = await upload(files, 3600);
  // As a store written by an earlier version: the record, and neither its index entry nor the index's marker.
  for (const key of (await storage.documents.list("file-expiry/")).keys) await storage.documents.delete(key);
  await clock.advance(3601_000);
  assert.equal(await files.sweepExpired(), 1);
  assert.equal(await storage.documents.get(fileDocKey("default", file.id)), null);
  assert.ok(await storage.documents.get("meta/file-expiry-index"));
});

test("file expiry: deleting a file removes its index entry; an entry whose record is gone is dropped", async () => {
  const clock = new ManualClock();
  const storage = createMemoryStorage();
  const files = createFileService(storage, { clock });
  await files.sweepExpired();
  const deleted = await upload(files, 3600);
  await files.delete("default", deleted.id);
  assert.deepEqual((await storage.documents.list("file-expiry/")).keys, []);
  const orphan = await upload(files, 3600);
  await storage.documents.delete(fileDocKey("default", orphan.id)); // a crash between the entry and the record
  await clock.advance(3601_000);
  assert.equal(await files.sweepExpired(), 0);
  assert.deepEqual((await storage.documents.list("file-expiry/")).keys, []);
});
