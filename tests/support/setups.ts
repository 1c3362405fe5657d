/**
 * The setups the engine contract runs on: one engine on memory, one on a
 * data directory, one node on PostgreSQL, and three in-process nodes on one
 * PostgreSQL schema (each with its own storage and ledger, as separate
 * processes would have). Every setup gives the same handle: the nodes, the
 * API as a client sees it (calls spread over the nodes), and a restart.
 */
import { type BatchEngine, type BatchEngineOptions, createBatchEngine } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";
import { FS, POSTGRES, type StoragePlace } from "./adapters.ts";

/** Options for the nodes of a setup (the target is required); `targetOf` gives node `i` a target of its own. */
export type NodeOptions = Partial<BatchEngineOptions> & Pick<BatchEngineOptions, "target"> & {
  targetOf?: (node: number) => BatchEngineOptions["target"];
};

/** The running nodes of a setup. */
export interface Nodes {
  /** Every node. */
  readonly all: readonly BatchEngine[];
  /** The API as a client behind a load balancer sees it: each call (and each file call) goes to the next node. */
  readonly api: BatchEngine;
  /** Node `i` (round robin): where a client's `i`-th call would land behind a load balancer. */
  node(i: number): BatchEngine;
  /** The first node's storage. */
  readonly storage: Storage;
  /** Closes every node (as a shutdown) and starts them again on the same storage; resolves with the new nodes. */
  restart(options?: Partial<NodeOptions>): Promise<Nodes>;
}

/** A setup the engine contract runs on. */
export interface EngineSetup {
  name: string;
  /** Whether its nodes keep their work in PostgreSQL (their expiry is judged by the database's clock). */
  postgres: boolean;
  /** Runs `body` with the setup's nodes started, closed and removed afterwards. */
  with(options: NodeOptions, body: (nodes: Nodes) => Promise<void>): Promise<void>;
}

/** An engine whose every call, and every call of its file service, goes to the next of `engines`. */
function roundRobin(engines: readonly BatchEngine[]): BatchEngine {
  let next = 0;
  const pick = () => engines[next++ % engines.length];
  const forward = (target: object) => (_: unknown, property: string | symbol) => {
    const value = (target as Record<string | symbol, unknown>)[property];
    return typeof value === "function" ? value.bind(target) : value;
  };
  return new Proxy({} as BatchEngine, {
    get(_, property) {
      const engine = pick();
      if (property === "files") return new Proxy({}, { get: (__, name) => forward(pick().files)(__, name) });
      return forward(engine)(_, property);
    },
  });
}

/** Starts `count` engines, one per storage `open` gives. */
async function startNodes(
  count: number,
  open: () => Promise<Storage>,
  options: NodeOptions,
  reuse: Storage[] = [],
): Promise<{ engines: BatchEngine[]; storages: Storage[] }> {
  const storages = reuse.length ? reuse : await Promise.all(Array.from({ length: count }, () => open()));
  const { targetOf, ...engineOptions } = options;
  const engines = storages.map((storage, i) =>
    createBatchEngine({ storage, logger: silentLogger, checkpoints: false, nodeId: `node-${i}`, ...engineOptions, target: targetOf?.(i) ?? options.target })
  );
  await Promise.all(engines.map((engine) => engine.start()));
  return { engines, storages };
}

/** A setup of `count` nodes on the storages of a place of `adapter` (or on one memory storage). */
function setupOf(name: string, count: number, kind: "memory" | "fs" | "postgres"): EngineSetup {
  return {
    name,
    postgres: kind === "postgres",
    async with(options, body) {
      const run = async (place: StoragePlace | null) => {
        const memory = kind === "memory" ? createMemoryStorage() : null;
        // A memory storage outlives a restart: it is the one place its data lives.
        const open = () => (memory ? Promise.resolve(memory) : place!.open());
        let current = await startNodes(count, open, options, memory ? [memory] : []);
        const closeAll = async () => {
          await Promise.all(current.engines.map((engine) => engine.close()));
          if (!memory) await Promise.all(current.storages.map((storage) => storage.close()));
        };
        const nodesOf = (engines: BatchEngine[], storages: Storage[]): Nodes => ({
          all: engines,
          api: roundRobin(engines),
          node: (i) => engines[i % engines.length],
          storage: storages[0],
          async restart(more = {}) {
            await closeAll();
            current = await startNodes(count, open, { ...options, ...more }, memory ? [memory] : []);
            return nodesOf(current.engines, current.storages);
          },
        });
        try {
          await body(nodesOf(current.engines, current.storages));
        } finally {
          await closeAll();
          await memory?.close();
        }
      };
      if (kind === "memory") return run(null);
      return (kind === "fs" ? FS : POSTGRES).withPlace(run);
    },
  };
}

/** Every setup the engine contract runs on. */
export const SETUPS: readonly EngineSetup[] = [
  setupOf("memory", 1, "memory"),
  setupOf("fs", 1, "fs"),
  setupOf("postgres", 1, "postgres"),
  setupOf("postgres×3", 3, "postgres"),
];
