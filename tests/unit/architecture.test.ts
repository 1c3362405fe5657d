/**
 * The doors between the rooms of `src/` open one way: each room imports only
 * from the rooms listed for it (and from itself), so lower layers never know
 * the ones above them.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, normalize, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../../src/", import.meta.url));

/**
 * Room → the rooms it may import from. A room is a folder of `src/`; `batch/…`
 * and `engine/…` rooms one level deeper (the engine's own files are room `engine`).
 */
const ALLOWED: Record<string, string[]> = {
  runtime: [],
  shared: ["runtime"],
  integrity: ["runtime", "shared"],
  storage: ["runtime", "shared", "integrity"],
  targets: ["runtime", "shared", "integrity"],
  "batch/model": ["runtime", "shared", "integrity", "storage", "targets"],
  "batch/input": ["runtime", "shared", "integrity", "batch/model"],
  "batch/files": ["runtime", "shared", "integrity", "storage", "batch/model", "batch/input"],
  "batch/message_batches": ["runtime", "shared", "integrity", "batch/model", "batch/input"],
  "engine/lines": ["runtime", "shared", "integrity", "storage", "targets", "batch/model", "batch/input"],
  "engine/ledger": ["runtime", "shared", "integrity", "storage", "batch/model", "batch/input", "engine/lines"],
  engine: ["runtime", "shared", "integrity", "storage", "targets", "batch/model", "batch/input", "batch/files", "engine/lines", "engine/ledger"],
  http: ["runtime", "shared", "integrity", "storage", "targets", "batch/model", "batch/input", "batch/files", "batch/message_batches", "engine"],
  client: ["runtime", "shared", "batch/model"],
  webhooks: ["runtime", "shared", "integrity", "storage", "batch/model"],
};

function roomOf(path: string): string {
  const parts = path.split("/");
  if (parts.length === 1) return "(entry points)";
  if (parts[0] === "batch") return parts.slice(0, 2).join("/");
  if (parts[0] === "engine") return parts.length > 2 ? parts.slice(0, 2).join("/") : "engine";
  return parts[0];
}

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await sources(path));
    else if (entry.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

test("architecture: every import in src/ goes through an open door", async () => {
  const wrong: string[] = [];
  for (const file of await sources(SRC)) {
    const from = relative(SRC, file);
    const room = roomOf(from);
    if (!(room in ALLOWED)) {
      if (room !== "(entry points)") wrong.push(`${from}: its room ${room} is not listed`);
      continue;
    }
    const text = await readFile(file, "utf8");
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
      const target = relative(SRC, normalize(join(dirname(file), match[1])));
      const targetRoom = roomOf(target);
      if (targetRoom !== room && !ALLOWED[room].includes(targetRoom)) wrong.push(`${from} imports ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test("architecture: no folder of src/ holds more than 15 files, and none of them is over 400 lines unless it says why", async () => {
  const folders = new Map<string, number>();
  const long: string[] = [];
  for (const file of await sources(SRC)) {
    const folder = dirname(relative(SRC, file));
    folders.set(folder, (folders.get(folder) ?? 0) + 1);
    const text = await readFile(file, "utf8");
    const lines = text.split("\n").length;
    if (lines > 400 && !/One cohesive thing:/.test(text)) long.push(`${relative(SRC, file)} (${lines} lines)`);
  }
  assert.deepEqual([...folders].filter(([, count]) => count > 15), []);
  assert.deepEqual(long, []);
});
