/**
 * Who a process is, as far as another process on the same machine can check:
 * its pid, host name, and (on Linux) boot id and pid namespace. Pids and host
 * names alone prove nothing in containers (a restarted entrypoint is pid 1
 * again on the same host name); with the boot id and pid namespace too, a
 * process that is gone can be proven gone.
 *
 * @module
 */
import { readFile, readlink } from "node:fs/promises";
import { hostname } from "node:os";
import process from "node:process";

/** A process, as recorded by itself for others to check. */
export interface ProcessIdentity {
  pid: number;
  host: string;
  /** Linux's boot id, when readable. */
  bootId?: string;
  /** Linux's pid namespace, when readable. */
  pidNamespace?: string;
}

async function readTrimmed(read: () => Promise<string>): Promise<string | undefined> {
  try {
    return (await read()).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The host's name, or `localhost` where the runtime may not read it (Deno without `--allow-sys`). */
export function hostName(): string {
  try {
    return hostname();
  } catch {
    return "localhost";
  }
}

/** This process. */
export async function thisProcess(): Promise<ProcessIdentity> {
  return {
    pid: process.pid,
    host: hostName(),
    bootId: await readTrimmed(() => readFile("/proc/sys/kernel/random/boot_id", "utf8")),
    pidNamespace: await readTrimmed(() => readlink("/proc/self/ns/pid")),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown })?.code === "EPERM";
  }
}

/**
 * Whether a recorded process is certainly gone: same boot, host and pid
 * namespace as this one, and its pid is dead or is this process's own (the
 * caller knows the record is not this process's, so it is a former life's).
 */
export function provablyGone(recorded: Partial<ProcessIdentity> | null, me: ProcessIdentity): boolean {
  if (!recorded || typeof recorded.pid !== "number" || recorded.host !== me.host) return false;
  if (!me.bootId || recorded.bootId !== me.bootId || !me.pidNamespace || recorded.pidNamespace !== me.pidNamespace) {
    return false;
  }
  return recorded.pid === me.pid || !isAlive(recorded.pid);
}
