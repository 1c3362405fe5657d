/**
 * Validation scans of uploads on a worker thread, which can also hash them, so
 * that the receiving thread only receives and writes.
 *
 * A scan is an optimisation, never a requirement: where no worker can start
 * (no worker support, a bundle without the worker file) scans run in the
 * calling thread; if the worker fails during a scan, that upload has no scan
 * (a batch that uses it is validated in full when it is created) and no
 * digest (its put hashes what it wrote).
 *
 * @module
 */
import type { MarkedDigest } from "../../integrity/digest_marks.ts";
import { SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT, startWorkerThread, type WorkerThread } from "../../runtime/threads.ts";
import type { InputScan, ValidationLimits } from "./validation.ts";
import { type Logger, silentLogger } from "../../shared/logger.ts";
import { type Clock, type ClockTimer, systemClock } from "../../shared/clock.ts";

/** Messages to the worker. */
export type ScanRequest =
  /** With `markEvery`, the worker also hashes what it scans, with a mark every so many bytes. */
  | { type: "start"; id: number; limits: ValidationLimits; markEvery?: number }
  | { type: "chunk"; id: number; bytes: Uint8Array }
  | { type: "finish"; id: number }
  | { type: "drop"; id: number };

/** Messages from the worker. */
export type ScanReply =
  /** `buffer` is the chunk's buffer, handed back to be filled again. */
  | { type: "ack"; id: number; bytes: number; buffer: ArrayBuffer }
  | { type: "done"; id: number; scan: InputScan | undefined; digest?: MarkedDigest };

/** What a finished scan gives: the scan, and the digest when one was asked for. */
export interface ScanResult {
  scan: InputScan | undefined;
  digest: MarkedDigest | undefined;
}

/** A scan that gave nothing (the worker failed, or the scan was dropped). */
const NO_RESULT: ScanResult = { scan: undefined, digest: undefined };

/** Bytes gathered into one message (fewer, larger messages cost less than one per network chunk). */
const MESSAGE_BYTES = 1024 * 1024;
/** Most bytes sent and not yet scanned per upload; beyond it the upload waits for the worker. */
const MAX_UNSCANNED_BYTES = 4 * MESSAGE_BYTES;
/**
 * The worker is stopped (its memory returned) once it has had no scan for this
 * long: kept warm, it held the heap of its last scan (BENCHMARKS.md, tried and
 * rejected).
 */
const IDLE_MS = 1000;

/** Options for {@link OffThreadScanner}. */
export interface OffThreadScannerOptions {
  /** The worker module (default: `scan_worker` beside this module). */
  workerUrl?: URL;
  /** Where a worker that fails to start for an unexpected reason is reported. */
  logger?: Logger;
  /** Times the idle worker's stop (injectable for tests). */
  clock?: Clock;
}

/** One upload's scan. */
export interface ScanSession {
  /** Hands over a chunk (copied). Returns a promise when the worker is behind: await it before the next chunk. */
  push(chunk: Uint8Array): Promise<void> | undefined;
  /** The scan (and digest) of everything pushed; both undefined when the worker failed. Called again, the same answer. */
  finish(): Promise<ScanResult>;
  /** Forgets the scan (the upload failed). */
  drop(): void;
}

interface SessionState {
  unscanned: number;
  resumeSender: (() => void) | null;
  settle: ((result: ScanResult) => void) | null;
}

const defaultWorkerUrl = () => new URL(import.meta.url.endsWith(".ts") ? "./scan_worker.ts" : "./scan_worker.js", import.meta.url);

/**
 * Owns the scan worker (started on first use, never keeping the process alive)
 * and its scans.
 *
 * @example
 * ```ts
 * const scanner = new OffThreadScanner();
 * const session = scanner.start(DEFAULT_VALIDATION_LIMITS)!;
 * for await (const chunk of upload) await session.push(chunk);
 * const scan = await session.finish(); // undefined if the worker could not run
 * await scanner.close();
 * ```
 */
export class OffThreadScanner {
  readonly #workerUrl: URL;
  #worker: WorkerThread | null = null;
  #failed = false;
  #nextId = 1;
  readonly #sessions = new Map<number, SessionState>();
  /** Message buffers the worker has handed back, ready to be filled again. */
  #spareBuffers: ArrayBuffer[] = [];
  #idleTimer: ClockTimer | undefined;

  readonly #logger: Logger;
  readonly #clock: Clock;

  constructor(options: OffThreadScannerOptions = {}) {
    this.#workerUrl = options.workerUrl ?? defaultWorkerUrl();
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
  }

  /**
   * Starts the scan of one upload; null when no worker can run here (scan in
   * this thread instead). With `markEvery`, the worker also hashes the upload.
   */
  start(limits: ValidationLimits, markEvery?: number): ScanSession | null {
    const worker = this.#ensureWorker();
    if (!worker) return null;
    this.#clock.clearTimeout(this.#idleTimer);
    const id = this.#nextId++;
    const state: SessionState = { unscanned: 0, resumeSender: null, settle: null };
    this.#sessions.set(id, state);
    worker.postMessage({ type: "start", id, limits, markEvery } satisfies ScanRequest);
    let staged = this.#buffer();
    let stagedBytes = 0;
    let finished: Promise<ScanResult> | null = null;
    const send = () => {
      if (stagedBytes === 0 || !this.#sessions.has(id)) return;
      const bytes = staged.subarray(0, stagedBytes);
      state.unscanned += stagedBytes;
      this.#worker!.postMessage({ type: "chunk", id, bytes } satisfies ScanRequest, [bytes.buffer as ArrayBuffer]);
      staged = this.#buffer();
      stagedBytes = 0;
    };
    return {
      push: (chunk) => {
        if (!this.#sessions.has(id)) return undefined;
        for (let offset = 0; offset < chunk.length;) {
          const take = Math.min(chunk.length - offset, MESSAGE_BYTES - stagedBytes);
          staged.set(chunk.subarray(offset, offset + take), stagedBytes);
          stagedBytes += take;
          offset += take;
          if (stagedBytes === MESSAGE_BYTES) send();
        }
        if (state.unscanned <= MAX_UNSCANNED_BYTES) return undefined;
        return new Promise<void>((resolve) => (state.resumeSender = resolve));
      },
      finish: () => {
        if (finished) return finished;
        if (!this.#sessions.has(id)) return (finished = Promise.resolve(NO_RESULT));
        send();
        return (finished = new Promise<ScanResult>((resolve) => {
          state.settle = resolve;
          this.#worker!.postMessage({ type: "finish", id } satisfies ScanRequest);
        }));
      },
      drop: () => {
        if (!this.#sessions.delete(id)) return;
        this.#worker?.postMessage({ type: "drop", id } satisfies ScanRequest);
        this.#release(state, NO_RESULT);
        this.#stopWhenIdle();
      },
    };
  }

  /** Stops the worker; scans still running end without a result. */
  async close(): Promise<void> {
    this.#clock.clearTimeout(this.#idleTimer);
    const worker = this.#worker;
    this.#worker = null;
    this.#failed = true;
    this.#failAll();
    await worker?.terminate();
  }

  #ensureWorker(): WorkerThread | null {
    if (this.#worker || this.#failed) return this.#worker;
    try {
      // Callbacks of a worker this scanner has since stopped are ignored.
      const worker: WorkerThread | null = startWorkerThread(this.#workerUrl, {
        message: (data) => {
          if (this.#worker === worker) this.#onReply(data as ScanReply);
        },
        failed: () => {
          if (this.#worker === worker) this.#fail();
        },
      });
      this.#worker = worker;
    } catch (error) {
      // Where no worker can run, startWorkerThread says so with null; anything thrown is unexpected.
      this.#logger.warn(`the upload scan worker could not start (${(error as Error).message}); scanning uploads in the main thread`);
      this.#worker = null;
    }
    if (!this.#worker) this.#failed = true;
    return this.#worker;
  }

  #buffer(): Uint8Array {
    return new Uint8Array(this.#spareBuffers.pop() ?? new ArrayBuffer(MESSAGE_BYTES));
  }

  #onReply(message: ScanReply) {
    if (message.type === "ack") this.#spareBuffers.push(message.buffer);
    const state = this.#sessions.get(message.id);
    if (!state) return;
    if (message.type === "ack") {
      state.unscanned -= message.bytes;
      if (state.unscanned <= MAX_UNSCANNED_BYTES / 2 && state.resumeSender) {
        const resume = state.resumeSender;
        state.resumeSender = null;
        resume();
      }
      return;
    }
    this.#sessions.delete(message.id);
    this.#release(state, { scan: message.scan, digest: message.digest });
    this.#stopWhenIdle();
  }

  /** Stops the worker once it has had no scan for IDLE_MS; the next scan starts a new one. */
  #stopWhenIdle() {
    if (this.#sessions.size > 0) return;
    this.#clock.clearTimeout(this.#idleTimer);
    // The wait does not keep the process alive.
    this.#idleTimer = this.#clock.setTimeout(() => this.#stopWorker(), IDLE_MS, true);
  }

  #stopWorker() {
    if (this.#sessions.size > 0 || !this.#worker) return;
    const worker = this.#worker;
    this.#worker = null;
    this.#spareBuffers = [];
    void worker.terminate();
  }

  #release(state: SessionState, result: ScanResult) {
    state.resumeSender?.();
    state.resumeSender = null;
    state.settle?.(result);
    state.settle = null;
  }

  #fail() {
    this.#worker = null;
    this.#failed = true;
    this.#failAll();
  }

  #failAll() {
    for (const state of this.#sessions.values()) this.#release(state, NO_RESULT);
    this.#sessions.clear();
  }
}

/** The scanner an engine uses for uploads: off thread when asked, else as the runtime's default; none otherwise. */
export function offThreadScannerFor(choice: boolean | undefined, logger: Logger): OffThreadScanner | undefined {
  return (choice ?? SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT) ? new OffThreadScanner({ logger }) : undefined;
}
