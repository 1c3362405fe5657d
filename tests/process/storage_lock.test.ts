/**
 * The data directory lock: liveness by heartbeat, never by pid or host name.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, readlink, utimes, writeFile } from "node:fs/promises";
import { utimesSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { typeScriptCommand } from "../../src/runtime/detect.ts";
import type { Logger } from "../../src/shared/logger.ts";
import { createFsStorage, isStorageError, type StorageError } from "../../src/storage/mod.ts";
import { ManualClock } from "../support/clock.ts";
import { removeDir, tempDir } from "../support/tmp.ts";

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await body(dir);
  } finally {
    await removeDir(dir);
  }
}

const lockPath = (dir: string) => join(dir, "batchspool.lock");
const readLock = async (dir: string) => JSON.parse(await readFile(lockPath(dir), "utf8"));

/** Writes a lock file as another holder would, last refreshed `ageMs` ago. */
async function writeLock(dir: string, holder: Record<string, unknown>, ageMs: number): Promise<void> {
  await writeFile(lockPath(dir), JSON.stringify(holder));
  const at = new Date(Date.now() - ageMs);
  await utimes(lockPath(dir), at, at);
}

/** A logger that keeps warnings and calls `onWarn` with each. */
function watchingLogger(onWarn: (message: string) => void = () => {}): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return {
    warnings,
    info() {},
    error() {},
    warn(message) {
      warnings.push(message);
      onWarn(message);
    },
  };
}

const thisBoot = async () => ({
  bootId: (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim() || undefined,
  pidNamespace: await readlink("/proc/self/ns/pid").catch(() => undefined),
});

/**
 * Moves `clock` on in steps until `pending` settles, letting real I/O finish
 * between steps; resolves with its outcome and the clock time it took.
 */
async function drive<T>(
  clock: ManualClock,
  pending: Promise<T>,
  stepMs = 100,
): Promise<{ value?: T; error?: unknown; tookMs: number }> {
  const started = clock.monotonic();
  let outcome: { value?: T; error?: unknown } | null = null;
  pending.then((value) => (outcome = { value }), (error) => (outcome = { error }));
  while (!outcome) {
    await clock.advance(stepMs);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return { ...(outcome as { value?: T; error?: unknown }), tookMs: clock.monotonic() - started };
}

test("lock: a lock naming this process's own pid is not proof that it is held: it is watched for the whole interval", () =>
  withDir(async (dir) => {
    // As a container's entrypoint finds it after a kill -9: pid 1 again (here: our own pid), same host name,
    // written in another pid namespace. It is taken over once unchanged for the stale interval, not before.
    await writeLock(dir, { token: "former-life", pid: process.pid, host: hostname(), pidNamespace: "pid:[1]" }, 9_700);
    const logger = watchingLogger();
    const clock = new ManualClock();
    const opened = await drive(
      clock,
      createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 10_000, clock }, logger }),
    );
    assert.ok(opened.value, String(opened.error));
    assert.ok(opened.tookMs >= 10_000, `took ${opened.tookMs} ms of the clock`);
    assert.notEqual((await readLock(dir)).token, "former-life");
    assert.match(logger.warnings.join("\n"), /waiting up to 10 s/);
    await opened.value.close();
    // The lock format of earlier versions, naming pid 1 (alive: init) on this host: the same.
    await writeLock(dir, { pid: 1, host: hostname(), acquiredAt: new Date().toISOString() }, 9_700);
    const again = await drive(clock, createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 10_000, clock } }));
    assert.ok(again.value && again.tookMs >= 10_000);
    assert.equal((await readLock(dir)).pid, process.pid);
    await again.value.close();
  }));

test("lock: staleness is judged by watching, not by clocks: a holder whose clock runs a minute behind keeps its lock", () =>
  withDir(async (dir) => {
    // The holder on another host stamps its heartbeats with a clock 60 s behind this one's: by this host's
    // clock its lock always looks a minute old. It refreshes the lock while the starter watches.
    // Each refresh lands a millisecond later than the one before at least, however fast it comes, and
    // before the starter looks again (synchronously: the starter's clock is a manual one that moves on
    // at once, and a refresh still on its way would be missed).
    let beats = 0;
    const behind = () => new Date(Date.now() - 60_000 + ++beats);
    await writeLock(dir, { token: "alive-elsewhere", pid: 4242, host: "node-b" }, 60_000);
    const logger = watchingLogger(() => {
      const at = behind();
      utimesSync(lockPath(dir), at, at);
    });
    const clock = new ManualClock();
    const opened = await drive(
      clock,
      createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 10_000, clock }, logger }),
    );
    assert.ok(
      isStorageError(opened.error, "locked") && /process 4242 on node-b/.test(opened.error.message),
      String(opened.error),
    );
    assert.ok(opened.tookMs < 10_000, "refused as soon as the refresh was seen");
    assert.equal((await readLock(dir)).token, "alive-elsewhere", "its lock is untouched");
  }));

test("lock: a foreign host's hour-old lock is taken over once it stayed unchanged for the interval, not at once", () =>
  withDir(async (dir) => {
    await writeLock(dir, { token: "elsewhere", pid: 4242, host: "node-that-died" }, 3_600_000);
    const clock = new ManualClock();
    const opened = await drive(clock, createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 5_000, clock } }));
    assert.ok(opened.value, String(opened.error));
    assert.ok(opened.tookMs >= 5_000, `took ${opened.tookMs} ms of the clock`);
    assert.equal((await readLock(dir)).host, hostname());
    await opened.value.close();
  }));

test("lock: a lock from this boot and pid namespace whose process is gone is taken over at once", async (t) => {
  const boot = await thisBoot();
  if (!boot.bootId || !boot.pidNamespace) return t.skip("needs Linux's /proc (boot id and pid namespace)");
  await withDir(async (dir) => {
    // Our own pid, written by a former life in this very namespace (a restart outside containers), and a dead pid.
    for (const pid of [process.pid, 2 ** 22 + 7]) {
      await writeLock(dir, { token: "former", pid, host: hostname(), ...boot }, 0);
      const logger = watchingLogger();
      const storage = await createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 60_000 }, logger });
      assert.deepEqual(logger.warnings, [], "no wait");
      await storage.close();
    }
  });
});

test("lock: a foreign host's lock with a fresh heartbeat is refused once it is refreshed, naming its holder", () =>
  withDir(async (dir) => {
    // Refreshed 5 s ago (so that the refresh below changes its time, however fast it comes).
    await writeLock(dir, { token: "alive-elsewhere", pid: 4242, host: "node-b" }, 5_000);
    // The holder on the other host refreshes its lock while this starter watches it.
    const logger = watchingLogger(() => void utimes(lockPath(dir), new Date(), new Date()));
    await assert.rejects(
      createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 60_000 }, logger }),
      (error) => isStorageError(error, "locked") && /process 4242 on node-b/.test(error.message),
    );
    assert.equal((await readLock(dir)).token, "alive-elsewhere", "its lock is untouched");
  }));

test("lock: a second opener in this process is refused while the first holds it", () =>
  withDir(async (dir) => {
    const storage = await createFsStorage({ dir });
    await assert.rejects(createFsStorage({ dir }), (e) =>
      isStorageError(e, "locked") && /already open in this process/.test(e.message));
    await storage.close();
    const again = await createFsStorage({ dir });
    await again.close();
  }));

/**
 * Starts the lock-holding fixture. `said(text)` resolves once its output holds
 * `text`, and rejects once its output has ended without it: on `close`, not
 * `exit`, since a child's last line may still be in the pipe when it exits.
 */
function startHolder(
  args: string[],
): Promise<{ child: ChildProcess; output: () => string; said: (text: string) => Promise<void> }> {
  const [command, commandArgs] = typeScriptCommand(
    fileURLToPath(new URL("../support/fixtures/hold_lock.ts", import.meta.url)),
    args,
  );
  const child = spawn(command, commandArgs, { stdio: ["pipe", "pipe", "inherit"] });
  let output = "";
  const waiters = new Set<() => void>();
  child.stdout!.on("data", (chunk) => {
    output += chunk;
    for (const waiter of waiters) waiter();
  });
  const said = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => output.includes(text) && (waiters.delete(check), resolve());
      waiters.add(check);
      child.once("close", (code) => reject(new Error(`exited (${code}) without saying ${text}: ${output}`)));
      check();
    });
  return Promise.resolve({ child, output: () => output, said });
}

test("lock: of several starters racing for a stale lock, exactly one wins; the others are refused", () =>
  withDir(async (dir) => {
    await writeLock(dir, { token: "long-dead", pid: 4242, host: "gone" }, 3_600_000);
    const starters = await Promise.all(
      Array.from(
        { length: 4 },
        () => startHolder([dir, "--wait-for-go", "--heartbeat", "100", "--stale-after", "1000"]),
      ),
    );
    try {
      await Promise.all(starters.map((s) => s.said("ready")));
      for (const starter of starters) starter.child.stdin!.write("go\n");
      await Promise.all(starters.map((s) => Promise.race([s.said("locked"), s.said("refused")])));
      const winners = starters.filter((s) => s.output().includes("locked"));
      assert.equal(winners.length, 1, starters.map((s) => s.output()).join(" | "));
      assert.equal((await readLock(dir)).pid, winners[0].child.pid);
      for (const loser of starters.filter((s) => s !== winners[0])) {
        assert.match(loser.output(), new RegExp(`refused: .*in use by process ${winners[0].child.pid}`));
      }
    } finally {
      for (const starter of starters) starter.child.kill("SIGKILL");
    }
  }));

test("lock: a live server in another process is refused; once it is killed its lock is taken over", () =>
  withDir(async (dir) => {
    const holder = await startHolder([dir, "--heartbeat", "100"]);
    await holder.said("locked");
    await assert.rejects(
      createFsStorage({ dir, lock: { staleAfterMs: 60_000 } }),
      (e) => isStorageError(e, "locked") && e.message.includes(`process ${holder.child.pid}`),
    );
    const exited = new Promise((resolve) => holder.child.once("exit", resolve));
    holder.child.kill("SIGKILL");
    await exited;
    // Provably gone where /proc tells the boot and pid namespace; otherwise after the stale interval.
    const storage = await createFsStorage({ dir, lock: { heartbeatMs: 100, staleAfterMs: 1_000 } });
    assert.equal((await readLock(dir)).pid, process.pid);
    await storage.close();
  }));

test("lock: a holder whose lock was taken over (it was stalled) stops: every storage call fails with locked", () =>
  withDir(async (dir) => {
    let lost: (error: StorageError) => void = () => {};
    const lostLock = new Promise<StorageError>((resolve) => (lost = resolve));
    const storage = await createFsStorage({ dir, lock: { heartbeatMs: 50, staleAfterMs: 1_000 }, onLockLost: lost });
    await storage.documents.put("d/x", 1);
    // What a stalled holder finds when it wakes: another process's lock in place of its own.
    await writeFile(lockPath(dir), JSON.stringify({ token: "the-new-holder", pid: 4242, host: "node-b" }));
    // The heartbeat does not keep the process alive (an open storage never did): this test does, meanwhile.
    const keepAlive = setInterval(() => {}, 1_000);
    const error = await lostLock.finally(() => clearInterval(keepAlive));
    assert.match(error.message, /took it over/);
    await assert.rejects(storage.documents.put("d/x", 2), (e) => isStorageError(e, "locked"));
    await assert.rejects(storage.blobs.put("b", new Uint8Array(1)), (e) => isStorageError(e, "locked"));
    await storage.close();
    assert.equal((await readLock(dir)).token, "the-new-holder", "the new holder's lock stays");
  }));

test("lock: a frozen holder that wakes after a takeover writes nothing the new holder sees, and learns it lost the lock", () =>
  withDir(async (dir) => {
    // The frozen holder: its clock never moves, so its heartbeat never runs (as under SIGSTOP).
    const frozen = await createFsStorage({
      dir,
      lock: { heartbeatMs: 100, staleAfterMs: 500, clock: new ManualClock() },
    });
    await frozen.logs.append("k", ["a-1"]);
    await frozen.documents.put("d", "from-a");
    // Another process finds its lock unchanged for 500 ms, takes the directory over and writes.
    const [command, args] = typeScriptCommand(fileURLToPath(new URL("../support/fixtures/take_over.ts", import.meta.url)), [
      dir,
      "500",
    ]);
    const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    const closed = new Promise((resolve) => child.once("close", resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", () => output.includes("took") && resolve());
        void closed.then(() => reject(new Error(`the new holder exited: ${output}`)));
      });
      await wakeAndWrite();
      child.stdin!.write("check\n");
      await closed;
    } finally {
      child.kill("SIGKILL");
    }
    const { seen, afterRestart } = JSON.parse(output.slice(output.indexOf("{")));
    const expected = { k: "a-1\nb-1\n", new: 0, d: "from-b", blobs: [] };
    assert.deepEqual(seen, expected);
    assert.deepEqual(afterRestart, expected);
    await frozen.close();

    async function wakeAndWrite() {
      // The holder wakes, still believing it holds the directory: every kind of write it tries.
      const late = await Promise.allSettled([
        frozen.logs.append("k", ["a-late"]),
        frozen.documents.put("d", "from-a-late"),
        frozen.documents.put("e", "created-late"),
        frozen.blobs.put("x", new Uint8Array([1, 2, 3])),
        frozen.logs.append("new", ["a-new"]),
        frozen.documents.delete("d"),
      ]);
      for (const [i, outcome] of late.slice(1).entries()) {
        assert.equal(outcome.status, "rejected", `write ${i + 1}`);
        assert.ok(
          isStorageError((outcome as PromiseRejectedResult).reason, "locked"),
          String((outcome as PromiseRejectedResult).reason),
        );
      }
      await assert.rejects(
        frozen.documents.get("d"),
        (e) => isStorageError(e, "locked"),
        "it knows it lost the directory",
      );
    }
  }));

test("lock: what starters that died while taking over left beside the lock is removed by the next holder", () =>
  withDir(async (dir) => {
    await writeFile(`${lockPath(dir)}.takeover-old-1`, "{}");
    await writeFile(`${lockPath(dir)}.new-${crypto.randomUUID()}`, "{}");
    const storage = await createFsStorage({ dir });
    assert.deepEqual((await readdir(dir)).filter((name) => name.startsWith("batchspool.lock")), ["batchspool.lock"]);
    await storage.close();
  }));
