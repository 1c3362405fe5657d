// Takes a data directory over from a silent holder, then writes as its new holder: appends "b-1" to
// log `k`, puts document `d` = "from-b", and says "took". On a line on stdin it says, as JSON, what
// the directory holds (log `k`, log `new`, document `d`, the blobs), reading it again after a
// restart of its storage, then exits.
// Args: <dir> <stale-after-ms>
import process from "node:process";
import { createFsStorage } from "../../src/storage/mod.ts";
import type { Storage } from "../../src/storage/types.ts";

const [dir, staleAfter] = process.argv.slice(2);
const open = () => createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: Number(staleAfter) } });
const text = async (stream: ReadableStream<Uint8Array>) => await new Response(stream).text();
const contents = async (storage: Storage) => ({
  k: await text(await storage.logs.read("k")),
  new: await storage.logs.length("new"),
  d: (await storage.documents.get("d"))?.value,
  blobs: (await storage.blobs.list("")).keys,
});

let storage = await open();
await storage.logs.append("k", ["b-1"]);
await storage.documents.put("d", "from-b");
console.log("took");
await new Promise((resolve) => process.stdin.once("data", resolve));
const seen = await contents(storage);
await storage.close();
storage = await open();
const afterRestart = await contents(storage);
await storage.close();
console.log(JSON.stringify({ seen, afterRestart }));
process.exit(0);
