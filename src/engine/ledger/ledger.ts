/**
 * The work ledger: where an engine's nodes find the work of every batch and
 * record its results. The engine (`../node.ts` and its steps) is written once
 * against this port; a ledger decides where work and results live:
 *
 * - `local/`: one node, items in memory, results in the storage's logs (any
 *   storage: memory, a data directory); a restart rebuilds the items from the
 *   batch documents, the logs and the newest checkpoint.
 * - `postgres/`: any number of nodes on one PostgreSQL schema, items in its
 *   tables with leases and fencing tokens, results in its results table.
 *
 * A batch's work is a few items: its validation, its slices of lines and its
 * finalizing. A node claims an item, and every write it makes for the item
 * names the claim's token: once another node has claimed the item (this one
 * was paused past its lease), the ledger records nothing more of it.
 *
 * @module
 */
import type { DigestMarks } from "../../integrity/digest_marks.ts";
import type { BatchRecord, BatchStatus, BatchUsage, FileContentRef } from "../../batch/model/objects.ts";
import { hostName, type ProcessIdentity } from "../../runtime/process_identity.ts";
import type { ResultWriter } from "../lines/results.ts";

/** What a work item does. */
export type WorkKind = "validate" | "slice" | "finalize";

/** The item numbers of a batch's validation and finalizing (its slices are 0, 1, …). */
export const VALIDATE_ITEM = -1;
export const FINALIZE_ITEM = -2;

/** Why a batch must stop sending lines before they are all done. */
export type StopReason = "cancel" | "expire" | "fail";

/** Why a running slice must stop sending: its batch stopped, or it is paused (its slices are handed back, not done). */
export type Halt = StopReason | "pause";

/** A stretch of a batch's input whose lines one claim runs. */
export interface SliceSpec {
  /** Its first physical input line (1-based) and how many lines it spans. */
  firstLine: number;
  lineCount: number;
  /** Its bytes in the input, [start, end). */
  byteStart: number;
  byteEnd: number;
  /**
   * The SHA-256 of those bytes, checked before any of its lines is sent; null
   * for a slice that is the whole input, checked stretch by stretch against
   * the digest marks recorded when it was uploaded.
   */
  sha256: string | null;
}

/** A claimed work item. */
export interface WorkItem extends SliceSpec {
  batchId: string;
  /** The batch's owner. */
  owner: string;
  kind: WorkKind;
  item: number;
  /** The claim's fencing token. */
  token: number;
  /** Whether the batch must stop, as the claim saw it. */
  stop: StopReason | null;
  /** The batch's priority (higher goes first). */
  priority: number;
}

/**
 * How a node claims. A node at its limit of slices may still claim one that
 * would otherwise wait behind its own: of a higher priority than all it runs,
 * or of an owner that holds fewer slices for its weight than another owner at
 * that priority (so a key that arrives behind another's huge batch starts at
 * once).
 */
export interface ClaimOptions {
  /** The node is at its limit: only such a slice, where this is the lowest priority it runs. */
  beyondLimit?: { lowestPriority: number };
}

/** A held item, named for a heartbeat, a fenced write or a release. */
export interface HeldItem {
  batchId: string;
  item: number;
  token: number;
}

/** A batch's results so far: counts and usage. */
export interface BatchTotals {
  completed: number;
  failed: number;
  usage: BatchUsage;
}

/** A batch's stop, the `errors.data` entry (as JSON) of a failure, and whether it is paused. */
export interface BatchStop {
  stop: StopReason | null;
  failure: string | null;
  paused: boolean;
}

/** What a node needs to record a claimed item's results. */
export interface ResultSink {
  /** The lines of [first, first + count) that already have a result. */
  finishedIn(first: number, count: number): Promise<(line: number) => boolean>;
  /**
   * Records results, fenced by the claim: once it was lost, nothing more is
   * recorded and waits fail with {@link LeaseLostError}.
   */
  writer: ResultWriter;
}

/** A result file's content as the ledger holds it, for the file record the finalizer writes. */
export interface ResultFileContent {
  bytes: number;
  content: FileContentRef;
  /** The whole file's digest and marks, where its bytes are hashed whole (logs); results rows carry their own. */
  sha256?: string;
  marks?: DigestMarks;
}

/** Told of work to claim, and of batches that must stop (or pause). */
export type LedgerSignal = { kind: "work" } | { kind: "stop"; batchId: string };

/** A node, as the node table shows it. */
export interface NodeRow extends ProcessIdentity {
  nodeId: string;
  startedAt: string;
  heartbeatAt: string;
  /** Seconds since its last heartbeat. */
  silentSeconds: number;
}

/** An item held now, as `GET /cluster` shows it. */
export interface HeldItemView {
  nodeId: string;
  batchId: string;
  item: number;
  kind: WorkKind;
  firstLine: number;
  lineCount: number;
  /** Seconds left on its lease (null: no lease, a single node's). */
  leaseSeconds: number | null;
}

/** A batch not yet ended, as `GET /cluster` shows it. */
export interface BatchInWork {
  batchId: string;
  stop: StopReason | null;
  slices: number;
  slicesLeft: number | null;
}

/** The batches that have not ended, by status as their work shows it, and their lines not yet finished. */
export interface LedgerOverview {
  batches: Partial<Record<BatchStatus, number>>;
  linesWaiting: number;
}

/** Reads and deletes the content of result files that live in a ledger rather than in storage. */
export interface ResultFileStore {
  /** Streams a file's bytes, checked as they are read: a stream that finds changed bytes errors before giving them out. */
  read(content: FileContentRef, bytes: number): Promise<ReadableStream<Uint8Array>>;
  /** Deletes a file's content. */
  delete(content: FileContentRef): Promise<void>;
}

/** A work ledger (see the module's comment). */
export interface WorkLedger {
  /** This node's name. */
  readonly nodeId: string;
  /** How slices are cut: most lines and bytes; null when a batch's input is one slice. */
  readonly sliceLimits: { maxLines: number; maxBytes: number } | null;
  /** Most slices a node runs at once unless told otherwise. */
  readonly defaultMaxSlices: number;
  /** How often a node renews its claims (null: claims do not lapse). */
  readonly heartbeatMs: number | null;
  /** How long a node's claim outlives its last heartbeat, in seconds (null: claims do not lapse). */
  readonly leaseSeconds: number | null;
  /** Result files it holds itself (null: all of them live in storage). */
  readonly resultFiles: ResultFileStore | null;

  /** Joins: recovers or registers, and starts telling `onSignal` of work and stops. */
  start(onSignal: (signal: LedgerSignal) => void): Promise<void>;
  /** Hands back what this node holds, for others to claim at once, and leaves. */
  leave(): Promise<void>;

  /** Adds a new batch (before its document is written) with its validation. */
  addBatch(record: BatchRecord): Promise<void>;
  /** Tells every node there is work. */
  notifyWork(): Promise<void>;
  /**
   * Tells every node a batch must stop; false when it had been told already
   * (or is not in the ledger). A failure replaces a stop of another reason (a
   * batch whose cancel cannot be finished fails), never the other way round.
   */
  stopBatch(batchId: string, reason: StopReason, failure?: string | null): Promise<boolean>;
  /** A batch's stop; undefined when the batch is not in the ledger (it ended). */
  stopOf(batchId: string): Promise<BatchStop | undefined>;
  /** Why those of these batches that must stop sending do (a stop before a pause). */
  stopsOf(batchIds: readonly string[]): Promise<Map<string, Halt>>;
  /**
   * Pauses (its slices are not claimed, and running ones are told to stop and
   * are handed back) or resumes a batch; a stop overrides a pause. False when
   * the batch is not in the ledger. The batch document says the same (a local
   * ledger rebuilds it from there).
   */
  pauseBatch(batchId: string, paused: boolean): Promise<boolean>;
  /** Stops (for expiry) the batches whose completion window ended, by the ledger's clock; returns their ids. */
  expireDue(): Promise<string[]>;
  /** Whether a file is the input of a batch that has not ended. */
  isInputInUse(fileId: string): Promise<boolean>;
  /** A running batch's results so far (null before its lines run). */
  liveTotals(batchId: string): Promise<BatchTotals | null>;
  /**
   * The results of a batch recorded so far, from `after` on (where an earlier
   * call said the next starts; null: from the first), as JSONL records of its
   * output and error files: each result once across calls, in an order a
   * repeated call gives again, and only durable ones. Null when `after` is not
   * such a position.
   */
  recordedSince(batchId: string, after: string | null): Promise<{ records: ReadableStream<Uint8Array>; next: string } | null>;
  /** A batch's results, once finalizing (they no longer change). */
  totals(batchId: string): Promise<BatchTotals>;

  /**
   * Claims one item nobody holds, of `kinds` only: validations and finalizing
   * first, then slices of batches not paused, by priority (highest first),
   * then of the owner holding fewest for its weight, then oldest batch first.
   */
  claim(kinds: readonly WorkKind[], options?: ClaimOptions): Promise<WorkItem | null>;
  /** Renews this node's claims; returns the ones it still holds. */
  heartbeat(held: readonly HeldItem[]): Promise<HeldItem[]>;
  /** Hands back a held item, for any node to claim. */
  release(held: HeldItem): Promise<void>;
  /** Whether this node still holds an item. */
  holds(held: HeldItem): Promise<boolean>;
  /**
   * Adds slices to a batch under a held validation, numbered after those it
   * has: with `final` (the default) the validation ends with them (no slices
   * at all: straight to finalizing); without, it goes on cutting while nodes
   * run the slices added so far (a ledger without `sliceLimits` refuses).
   * False when the claim was lost.
   */
  addSlices(held: HeldItem, slices: readonly SliceSpec[], final?: boolean): Promise<boolean>;
  /** Where the slices added to a batch so far end (zero lines and bytes: none), for a validation that resumes. */
  slicedSoFar(batchId: string): Promise<{ lines: number; bytes: number }>;
  /** Marks a held slice done (the last one makes the finalizing); false when the claim was lost. */
  finishSlice(held: HeldItem): Promise<boolean>;
  /** Takes an ended batch out (its results stay: its files may be made of them). */
  removeBatch(batchId: string): Promise<void>;

  /** Where a held slice's or finalizing's results go. */
  resultSink(item: WorkItem, record: BatchRecord): Promise<ResultSink>;
  /** The batch's result files' content, by kind (null: no result of that kind). */
  resultFileContents(held: HeldItem, record: BatchRecord): Promise<{ output: ResultFileContent | null; errors: ResultFileContent | null }>;

  /**
   * Frees the work of nodes that are gone; returns how many nodes are live
   * (this one included), and which of them comes first by node id (the one
   * that reports the ledger's overview in its metrics).
   */
  liveNodes(): Promise<{ count: number; first: string }>;
  /** Seconds since a batch was added (null: it is not in the ledger). */
  addedSecondsAgo(batchId: string): Promise<number | null>;
  /** The node table. */
  nodes(): Promise<NodeRow[]>;
  /** Every item held now. */
  heldItems(): Promise<HeldItemView[]>;
  /** Batches not yet ended. */
  batchesInWork(): Promise<BatchInWork[]>;
  /** The batches that have not ended, by status, and their lines not yet finished. */
  overview(): Promise<LedgerOverview>;
  /** Writes a checkpoint (a local ledger's faster restart); null when the ledger keeps none. */
  checkpoint(): Promise<number | null>;
}

/** A node's default name: the host's, and a random suffix (a restarted process is a new node). */
export function defaultNodeId(): string {
  return `${hostName()}-${crypto.randomUUID().slice(0, 6)}`;
}

/**
 * The ledger's one error: a write refused because another node claimed the
 * item this node was working on (it was paused past its lease). Nothing more
 * of the item may be written; the new holder goes on with it.
 *
 * @example
 * ```ts
 * if (error instanceof LeaseLostError) return; // another node has it
 * ```
 */
export class LeaseLostError extends Error {
  readonly code = "lease_lost";

  constructor(message: string) {
    super(message);
    this.name = "LeaseLostError";
  }
}
