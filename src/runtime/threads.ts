/**
 * Worker threads on every runtime: Web Workers on Deno and Bun, and
 * `node:worker_threads` on Node (which has no Web Worker).
 *
 * Why not `node:worker_threads` everywhere: on Deno 2.9 it delivers a message
 * about every 80 ms (200 messages of 1 MiB took 16 s; a Web Worker takes 66 ms).
 *
 * @module
 */
import { parentPort, Worker as NodeWorker } from "node:worker_threads";
import { currentRuntime } from "./detect.ts";

/**
 * Whether uploads are validated on a worker thread unless told otherwise: on
 * Bun only. Measured with the 200 MB upload of `bench/upload_ingest.ts` on the
 * project's 2-core VM (upload and validation ÷ the copy-and-hash floor, median
 * of five pairs, main thread → worker, each pair of figures one run): Bun
 * 0.49 → 0.60, 0.50 → 0.52, 0.57 → 0.62, 0.44 → 0.57, 0.56 → 0.67, 0.48 → 0.40
 * and 0.46 → 0.41 (median 0.49 → 0.57; ~30 MiB more at the peak of benchmark
 * 4); Deno 0.44 → 0.44, 0.46 → 0.51, 0.43 → 0.57, 0.44 → 0.37, 0.48 → 0.59,
 * 0.58 → 0.50, 0.55 → 0.41, 0.48 → 0.45 and 0.41 → 0.45, no faster than the
 * spread between runs, for 35–50 MiB more at the peak of benchmark 4; Node
 * 0.54 → 0.50, 0.39 → 0.39, 0.46 → 0.45, 0.50 → 0.44, 0.46 → 0.41 and
 * 0.40 → 0.40. Node's two cores are already full with receiving (its HTTP
 * parser copies every chunk), hashing and writing the upload, so the worker's
 * own work (its copy of each chunk, its start, its heap) takes what it frees.
 *
 * @example
 * ```ts
 * const scanner = SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? new OffThreadScanner() : undefined;
 * ```
 */
export const SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT: boolean = currentRuntime() === "bun";

/** A worker thread started by {@link startWorkerThread}. */
export interface WorkerThread {
  /** Sends a message; `transfer` lists buffers handed over without a copy. */
  postMessage(message: unknown, transfer?: ArrayBuffer[]): void;
  /** Stops the worker. */
  terminate(): Promise<void>;
}

/** What the parent hears from its worker. */
export interface WorkerThreadHandlers {
  message(data: unknown): void;
  /** The worker failed to start or threw; it is gone. */
  failed(error: unknown): void;
}

/**
 * Starts `module` on a worker thread that does not keep the process alive.
 * Null where none can run it: Node cannot load a TypeScript module in a worker
 * (the npm build runs JavaScript, where this works).
 *
 * @example
 * ```ts
 * const worker = startWorkerThread(new URL("./scan_worker.js", import.meta.url), {
 *   message: (data) => console.log(data),
 *   failed: (error) => console.error(error),
 * });
 * worker?.postMessage({ hello: 1 });
 * ```
 */
export function startWorkerThread(module: URL, handlers: WorkerThreadHandlers): WorkerThread | null {
  if (currentRuntime() === "node") {
    if (module.pathname.endsWith(".ts")) return null;
    const worker = new NodeWorker(module);
    worker.unref();
    worker.on("message", handlers.message);
    worker.on("error", handlers.failed);
    worker.on("exit", (code) => handlers.failed(new Error(`worker exited with code ${code}`)));
    return {
      postMessage: (message, transfer) => worker.postMessage(message, transfer),
      terminate: async () => {
        await worker.terminate();
      },
    };
  }
  const worker = new Worker(module, { type: "module" }) as Worker & { unref?: () => void };
  worker.unref?.();
  let alive = true;
  worker.onmessage = (event) => handlers.message(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    alive = false;
    handlers.failed(event.error ?? new Error(event.message));
  };
  return {
    postMessage: (message, transfer) => worker.postMessage(message, transfer ?? []),
    terminate: () => {
      if (alive) {
        alive = false;
        worker.terminate();
        handlers.failed(new Error("worker terminated"));
      }
      return Promise.resolve();
    },
  };
}

/**
 * The worker side: calls `onMessage` with each message from the parent and
 * returns the function that answers it.
 *
 * @example
 * ```ts
 * const reply = connectToParent((data) => reply({ echo: data }));
 * // Buffers listed as the second argument are moved, not copied: reply(message, [bytes.buffer])
 * ```
 */
export function connectToParent(
  onMessage: (data: unknown) => void,
): (message: unknown, transfer?: ArrayBuffer[]) => void {
  if (parentPort) {
    const port = parentPort;
    port.on("message", onMessage);
    return (message, transfer) => port.postMessage(message, transfer);
  }
  const scope = globalThis as unknown as {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(message: unknown, transfer: ArrayBuffer[]): void;
  };
  scope.onmessage = (event) => onMessage(event.data);
  return (message, transfer) => scope.postMessage(message, transfer ?? []);
}
