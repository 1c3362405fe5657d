// Opens a data directory and holds it until killed. Says "locked" on stdout once it holds it,
// or "refused: <message>" when another process holds it. With "--wait-for-go", it first says
// "ready" and waits for a line on stdin, so that several starters can be let go at once.
// Args: <dir> [--heartbeat <ms>] [--stale-after <ms>] [--wait-for-go]
import process from "node:process";
import { createFsStorage, isStorageError } from "../../src/storage/mod.ts";

const args = process.argv.slice(2);
const option = (name: string) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : undefined);
const dir = args.find((arg, i) => !arg.startsWith("--") && !args[i - 1]?.startsWith("--"))!;
if (args.includes("--wait-for-go")) {
  console.log("ready");
  await new Promise((resolve) => process.stdin.once("data", resolve));
}
try {
  await createFsStorage({ dir, lock: { heartbeatMs: option("--heartbeat"), staleAfterMs: option("--stale-after") } });
  console.log("locked");
  setInterval(() => {}, 1000);
} catch (error) {
  if (!isStorageError(error, "locked")) throw error;
  console.log(`refused: ${error.message}`);
  process.exit(0);
}
