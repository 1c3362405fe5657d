/**
 * Checkpoints: numbered snapshots of the engine's state, each wrapped in a
 * SHA-256 envelope, the newest `keep` kept. Loading takes the newest one that
 * verifies and skips corrupted ones with a warning. Sequence numbers continue
 * after a restart.
 *
 * A checkpoint only shortens recovery: it says how far into each log the
 * engine's knowledge already reaches, so only the logs' tails are re-read.
 * Without a valid checkpoint recovery scans the logs whole, with the same result.
 *
 * @module
 */
import { IntegrityError, openEnvelope, sealEnvelope } from "../../../integrity/envelope.ts";
import { isStorageError } from "../../../storage/errors.ts";
import type { Storage } from "../../../storage/types.ts";
import type { Logger } from "../../../shared/logger.ts";
import type { BatchStatus } from "../../../batch/model/objects.ts";
import type { BatchProgress, ProgressSnapshot } from "./batch_progress.ts";
import { CHECKPOINT_PREFIX, checkpointKey } from "../../../batch/model/storage_keys.ts";

/** The state of one unfinished batch in a checkpoint. */
export interface BatchSnapshot {
  /** What its work showed (informative: its document is what counts). */
  status: BatchStatus;
  progress: ProgressSnapshot | null;
  /** Lines whose requests were in flight (none recorded since the engine is one: kept for the format). */
  inFlight: number[];
}

/** What a checkpoint holds. */
export interface EngineSnapshot {
  /** Format version of this snapshot. */
  format: 1;
  /** Which engine wrote it. */
  nodeId: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Unfinished batches, in the order they were queued. */
  queued: string[];
  batches: Record<string, BatchSnapshot>;
  /** Free-form metadata (batchspool version, …). */
  metadata: Record<string, unknown>;
}

/** A loaded checkpoint. */
export interface Checkpoint {
  sequence: number;
  snapshot: EngineSnapshot;
}

interface StoredCheckpoint {
  envelope: string;
}

const sequenceOf = (key: string) => Number(key.slice(CHECKPOINT_PREFIX.length));

/**
 * Saves and loads checkpoints in a storage adapter's documents.
 *
 * @example
 * ```ts
 * const checkpoints = new CheckpointStore(storage, { keep: 3, logger: consoleLogger });
 * await checkpoints.save(snapshot);
 * const latest = await checkpoints.loadLatest();
 * ```
 */
export class CheckpointStore {
  readonly keep: number;
  #storage: Storage;
  #logger: Logger;
  #next: number | undefined;

  constructor(storage: Storage, options: { keep: number; logger: Logger }) {
    if (!Number.isInteger(options.keep) || options.keep < 1) {
      throw new RangeError(`keep must be an integer of at least 1, got ${options.keep}`);
    }
    this.#storage = storage;
    this.keep = options.keep;
    this.#logger = options.logger;
  }

  /** Sequence numbers of the stored checkpoints, newest first. */
  async sequences(): Promise<number[]> {
    const page = await this.#storage.documents.list(CHECKPOINT_PREFIX, { reverse: true, limit: 10_000 });
    return page.keys.map(sequenceOf).filter(Number.isInteger);
  }

  /** Writes a new checkpoint and deletes the ones beyond `keep`. Returns its sequence number. */
  async save(snapshot: EngineSnapshot): Promise<number> {
    const existing = await this.sequences();
    this.#next ??= (existing[0] ?? 0) + 1;
    const sequence = this.#next++;
    const stored: StoredCheckpoint = { envelope: sealEnvelope(snapshot) };
    await this.#storage.documents.put(checkpointKey(sequence), stored);
    for (const old of [sequence, ...existing].slice(this.keep)) {
      await this.#storage.documents.delete(checkpointKey(old));
    }
    return sequence;
  }

  /** The newest checkpoint that verifies, or null. Corrupted ones are skipped with a warning. */
  async loadLatest(): Promise<Checkpoint | null> {
    for (const sequence of await this.sequences()) {
      try {
        const doc = await this.#storage.documents.get<StoredCheckpoint>(checkpointKey(sequence));
        if (!doc) continue;
        const snapshot = openEnvelope<EngineSnapshot>(doc.value.envelope);
        if (snapshot.format !== 1) throw new IntegrityError(`unknown checkpoint format ${snapshot.format}`);
        this.#next = Math.max(this.#next ?? 0, sequence + 1);
        return { sequence, snapshot };
      } catch (error) {
        if (!(error instanceof IntegrityError) && !isStorageError(error, "corrupt") && !(error instanceof TypeError)) {
          throw error;
        }
        this.#logger.warn(`checkpoint ${sequence} is corrupted and was skipped: ${(error as Error).message}`);
      }
    }
    return null;
  }
}

/** A snapshot of the batches that have not ended, as a checkpoint stores it. */
export function snapshotOf(
  batches: Iterable<{ id: string; status: BatchStatus; progress: BatchProgress | null }>,
  nodeId: string,
  createdAt: number,
): EngineSnapshot {
  const snapshots: Record<string, BatchSnapshot> = {};
  for (const { id, status, progress } of batches) snapshots[id] = { status, progress: progress?.snapshot() ?? null, inFlight: [] };
  return { format: 1, nodeId, createdAt, queued: Object.keys(snapshots), batches: snapshots, metadata: { batchspool: "0.1.0" } };
}
