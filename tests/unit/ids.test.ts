import assert from "node:assert/strict";
import { test } from "node:test";
import { isBatchId, isFileId, lineOfRecord, newBatchId, newFileId, newRequestId } from "../../src/batch/model/ids.ts";

test("ids: request ids carry 64 random bits and their line; none repeats across many pool refills", () => {
  const seen = new Set<string>();
  for (let line = 0; line < 20_000; line++) {
    const id = newRequestId(line);
    assert.match(id, new RegExp(`^batch_req_[0-9a-f]{16}_${line}$`));
    seen.add(id.slice(10, 26));
    assert.equal(lineOfRecord(`{"id":"${id}","custom_id":"c"}`), line);
  }
  assert.equal(seen.size, 20_000);
});

test("ids: file and batch ids are time-ordered, random-suffixed and recognised", () => {
  const files = [newFileId(1_000), newFileId(1_000), newFileId(2_000)];
  const batches = [newBatchId(1_000), newBatchId(2_000)];
  assert.ok(files.every(isFileId) && batches.every(isBatchId));
  assert.ok(!isFileId(batches[0]) && !isBatchId(files[0]) && !isFileId("file-../etc"));
  assert.deepEqual([...files].sort(), files, "creation order is key order");
  assert.equal(new Set(files.map((id) => id.slice(-24))).size, 3);
});
