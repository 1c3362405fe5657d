/** Builds an in-process app on memory storage for `app.request()` tests. */
import type { BrowserGuardOptions } from "../../src/http/access/browser_guard.ts";
import { createBatchEngine, type BatchEngineOptions } from "../../src/engine/engine.ts";
import { silentLogger } from "../../src/shared/logger.ts";
import type { BatchObject } from "../../src/batch/model/objects.ts";
import { createMockTarget } from "../../src/targets/mock.ts";
import { createApp } from "../../src/http/app.ts";
import type { BatchEventsOptions } from "../../src/http/batch_events.ts";
import { createMemoryStorage } from "../../src/storage/memory.ts";
import type { Storage } from "../../src/storage/types.ts";

export interface TestApp {
  app: ReturnType<typeof createApp>;
  engine: ReturnType<typeof createBatchEngine>;
  storage: Storage;
  close(): Promise<void>;
}

export async function makeTestApp(
  options: Partial<BatchEngineOptions> & {
    apiKeys?: string[];
    start?: boolean;
    batchEvents?: BatchEventsOptions;
    browserGuard?: BrowserGuardOptions;
  } = {},
): Promise<TestApp> {
  const storage = options.storage ?? createMemoryStorage();
  const engine = createBatchEngine({
    target: createMockTarget(),
    logger: silentLogger,
    checkpoints: false,
    ...options,
    storage,
  });
  if (options.start !== false) await engine.start();
  const app = createApp({
    engine,
    apiKeys: options.apiKeys,
    logger: silentLogger,
    maxFileBytes: options.fileLimits?.maxFileBytes,
    batchEvents: options.batchEvents,
    browserGuard: options.browserGuard,
    clock: options.clock,
  });
  return {
    app,
    engine,
    storage,
    async close() {
      await engine.close();
      await storage.close();
    },
  };
}

export function chatLine(customId: string, content = `hello ${customId}`, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "test-model", messages: [{ role: "user", content }], ...extra },
  });
}

export function uploadForm(content: string | Uint8Array, fields: Record<string, string> = { purpose: "batch" }, filename = "input.jsonl"): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append("file", new Blob([content as BlobPart]), filename);
  return form;
}

/**
 * A form as the bytes and headers of a request body. In-process requests send
 * these rather than the `FormData` itself: Node 24's `fetch` (undici) streams a
 * `FormData` body with a generator that throws an unhandled "already closed"
 * error in the client when the server cancels the body (as a 413 does). A real
 * client is another process; its body arrives as bytes.
 */
export async function formBody(form: FormData): Promise<{ body: Uint8Array<ArrayBuffer>; headers: Record<string, string> }> {
  const request = new Request("http://form.invalid/", { method: "POST", body: form });
  // Read before the body: Bun forgets the header once the body is read.
  const headers = { "content-type": request.headers.get("content-type")! };
  return { body: new Uint8Array(await request.arrayBuffer()), headers };
}

/** POSTs a form to `/v1/files` in process. */
export async function postForm(app: TestApp["app"], form: FormData, headers: Record<string, string> = {}): Promise<Response> {
  const encoded = await formBody(form);
  return await app.request("/v1/files", { method: "POST", body: encoded.body, headers: { ...encoded.headers, ...headers } });
}

export async function upload(
  app: TestApp["app"],
  content: string | Uint8Array,
  fields: Record<string, string> = { purpose: "batch" },
  headers: Record<string, string> = {},
): Promise<Response> {
  return await postForm(app, uploadForm(content, fields), headers);
}

export async function postJson(app: TestApp["app"], path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return await app.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** Polls a batch until it reaches a final status. */
export async function waitForBatch(
  app: TestApp["app"],
  id: string,
  headers: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<BatchObject> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const batch = await (await app.request(`/v1/batches/${id}`, { headers })).json() as BatchObject;
    if (["completed", "failed", "expired", "cancelled"].includes(batch.status)) return batch;
    if (Date.now() > deadline) throw new Error(`batch ${id} still ${batch.status}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
