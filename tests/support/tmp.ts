import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh empty directory under the system temp dir. */
export function tempDir(label = "batchspool-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), label));
}

/** Removes a directory tree, ignoring a missing one. */
export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}
