/**
 * Worker threads on every runtime: Web Workers on Deno and Bun, and
 * `node:worker_threads` on Node (which has no Web Worker).
 *
 * Why not `node:worker_threads` everywhere: on Deno it delivers messages two
 * orders of magnitude slower than a Web Worker (BENCHMARKS.md, tried and rejected).
 *
 * @module
 */
import { parentPort, Worker as NodeWorker } from "node:worker_threads";
import { currentRuntime } from "./detect.ts";

/**
 * Whether uploads are validated on a worker thread unless told otherwise: on
 * Deno only, whose main thread also serves HTTP and writes the file, so it
 * gains the most; on Node and Bun the worker's start and copies cost what it
 * frees (BENCHMARKS.md, benchmark 3).
 *
 * @example
 * ```ts
 * const scanner = SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT ? new OffThreadScanner() : undefined;
 * ```
 */
export const SCAN_UPLOADS_OFF_THREAD_BY_DEFAULT: boolean = currentRuntime() === "deno";

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
 * (the npm build runs JavaScript, where this works), and Deno without the
 * permission to read (or import) the module would only print an error from
 * inside the worker.
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
  if (!mayLoadInWorker(module)) return null;
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

interface DenoPermissions {
  permissions?: { querySync?(descriptor: { name: string; path?: string; host?: string }): { state: string } };
}

/** Whether this runtime may load `module` into a worker: on Deno, only with the permission to read or import it. */
function mayLoadInWorker(module: URL): boolean {
  if (currentRuntime() !== "deno") return true;
  const query = (globalThis as unknown as { Deno: DenoPermissions }).Deno.permissions?.querySync;
  if (!query) return true;
  try {
    const descriptor = module.protocol === "file:"
      ? { name: "read", path: decodeURIComponent(module.pathname) }
      : { name: "import", host: module.host };
    return query(descriptor).state === "granted";
  } catch {
    // A descriptor this Deno does not know: let the worker try.
    return true;
  }
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
