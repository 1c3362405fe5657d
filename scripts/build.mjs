#!/usr/bin/env node
// Builds dist/ for npm: JavaScript and declarations from tsc, plus the `dist/cli.js` bin.
import { execFileSync } from "node:child_process";
import { chmodSync, rmSync, writeFileSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
writeFileSync("dist/cli.js", '#!/usr/bin/env node\nimport "./src/cli.js";\n');
chmodSync("dist/cli.js", 0o755);
console.log("built dist/");
