/**
 * Where a data directory keeps things on disk, for tests that change files
 * behind the fs storage's back (a torn tail, a flipped byte, a crash's temp
 * file): its data folder, and a log's segment files.
 */
import { readdir, readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { dataFolderOf } from "../../src/storage/fs/fs_storage.ts";

/** The path of `parts` inside `area` of the data directory `dir`'s data folder. */
export async function fsArea(dir: string, area: "blobs" | "logs" | "docs", ...parts: string[]): Promise<string> {
  return join(await dataFolderOf(dir), area, ...parts);
}

/** The newest segment file of log `key` in `dir`, and where its records start (after its header line). */
export async function logSegmentFile(dir: string, key: string): Promise<{ path: string; recordsStart: number }> {
  const plain = await fsArea(dir, "logs", key);
  const name = basename(plain);
  const epochs = (await readdir(dirname(plain)))
    .filter((entry) => entry.startsWith(`${name}~`))
    .map((entry) => Number(entry.slice(name.length + 1)))
    .sort((a, b) => a - b);
  if (!epochs.length) throw new Error(`no segment of log ${key} in ${dir}`);
  const path = `${plain}~${epochs.at(-1)}`;
  const text = await readFile(path, "utf8");
  return { path, recordsStart: Buffer.byteLength(text.slice(0, text.indexOf("\n") + 1)) };
}
