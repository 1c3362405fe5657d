// Opens a data directory, says "locked" on stdout, and holds it until killed.
import process from "node:process";
import { createFsStorage } from "../../src/storage/mod.ts";

await createFsStorage({ dir: process.argv[process.argv.length - 1] });
console.log("locked");
setInterval(() => {}, 1000);
