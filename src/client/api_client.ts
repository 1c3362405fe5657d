/**
 * A small client of the public Files and Batches HTTP API, for the CLI. It
 * speaks only what OpenAI documents, so it works against batchspool, OpenAI,
 * or any compatible server; and Anthropic's Message Batches API.
 *
 * @module
 */
import { open, stat } from "node:fs/promises";
import { basename } from "node:path";
import type { BatchObject, FileObject } from "../batch/model/objects.ts";

/** Where the API is and how to authenticate. */
export interface ClientConfig {
  /** Base URL including `/v1`. */
  baseUrl: string;
  apiKey: string | undefined;
}

/** Why a client call failed; `exitCode` is what the CLI exits with. */
export class ClientError extends Error {
  readonly exitCode: number;
  readonly status: number | null;
  constructor(message: string, exitCode: number, status: number | null = null) {
    super(message);
    this.name = "ClientError";
    this.exitCode = exitCode;
    this.status = status;
  }
}

/** Exit codes scripts can rely on. */
export const EXIT = {
  ok: 0,
  /** The batch ended failed, expired or cancelled. */
  batchNotCompleted: 1,
  usage: 2,
  /** The server could not be reached. */
  unreachable: 3,
  /** The server refused the request (4xx). */
  rejected: 4,
  /** The server failed (5xx). */
  serverError: 5,
} as const;

const CHUNK = 256 * 1024;

/** Streams a file from disk in chunks. */
function fileChunks(path: string): ReadableStream<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let position = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      handle ??= await open(path, "r");
      const buffer = new Uint8Array(CHUNK);
      // An explicit position: reading "from the current position" is far slower on Deno.
      const { bytesRead } = await handle.read(buffer, 0, CHUNK, position);
      position += bytesRead;
      if (bytesRead === 0) {
        await handle.close();
        controller.close();
      } else {
        controller.enqueue(buffer.subarray(0, bytesRead));
      }
    },
    async cancel() {
      await handle?.close();
    },
  });
}

/** A multipart/form-data body streamed from text fields and one file on disk. */
function multipartBody(
  fields: Record<string, string>,
  file: { name: string; filename: string; path: string },
  boundary: string,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const escape = (value: string) => value.replace(/["\\\r\n]/g, "_");
  let head = "";
  for (const [name, value] of Object.entries(fields)) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${escape(name)}"\r\n\r\n${value}\r\n`;
  }
  head += `--${boundary}\r\nContent-Disposition: form-data; name="${escape(file.name)}"; filename="${
    escape(file.filename)
  }"\r\nContent-Type: application/jsonl\r\n\r\n`;
  const parts: (Uint8Array | (() => ReadableStream<Uint8Array>))[] = [
    encoder.encode(head),
    () => fileChunks(file.path),
    encoder.encode(`\r\n--${boundary}--\r\n`),
  ];
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        if (reader) {
          const { done, value } = await reader.read();
          if (!done) return controller.enqueue(value);
          reader = undefined;
        }
        const next = parts.shift();
        if (next === undefined) return controller.close();
        if (next instanceof Uint8Array) return controller.enqueue(next);
        reader = next().getReader();
      }
    },
  });
}

/**
 * A JSONL file of Anthropic batch requests (`{"custom_id", "params"}` a line)
 * streamed as the body of `POST /v1/messages/batches`: `{"requests":[` and
 * the lines joined by commas (blank ones left out), then `]}`.
 */
function messageBatchBody(path: string): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const NEWLINE = 0x0a;
  const isSpace = (byte: number) => byte === 0x20 || byte === 0x09 || byte === 0x0d;
  let first = true;
  /** Whether the current line has begun (its first byte that is not space was seen). */
  let inLine = false;
  const reader = fileChunks(path).getReader();
  let started = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!started) {
        started = true;
        return controller.enqueue(encoder.encode('{"requests":['));
      }
      const { done, value } = await reader.read();
      if (done) {
        controller.enqueue(encoder.encode("]}"));
        return controller.close();
      }
      const out: number[] = [];
      for (const byte of value) {
        if (byte === NEWLINE) {
          inLine = false;
          continue;
        }
        if (!inLine) {
          if (isSpace(byte)) continue;
          inLine = true;
          if (!first) out.push(0x2c);
          first = false;
        }
        out.push(byte);
      }
      controller.enqueue(new Uint8Array(out));
    },
    async cancel() {
      await reader.cancel();
    },
  });
}

/**
 * Whether a JSONL file holds Anthropic batch requests (`custom_id` and
 * `params`) rather than OpenAI's request lines, by its first line.
 */
export async function isMessageBatchFile(path: string): Promise<boolean> {
  // A file that cannot be read is for the upload to report.
  const handle = await open(path, "r").catch(() => null);
  if (!handle) return false;
  try {
    const buffer = new Uint8Array(1024 * 1024);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const firstLine = new TextDecoder().decode(buffer.subarray(0, bytesRead)).split("\n").find((text) => text.trim());
    const value = JSON.parse(firstLine ?? "null");
    return typeof value === "object" && value !== null && "params" in value && !("body" in value);
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}

/** What the CLI shows of an Anthropic message batch. */
export interface MessageBatchSummary {
  id: string;
  processing_status: string;
  request_counts: Record<string, number>;
  results_url: string | null;
}

/**
 * Creates a client.
 *
 * @example
 * ```ts
 * const api = createApiClient({ baseUrl: "http://127.0.0.1:8787/v1", apiKey: undefined });
 * const batch = await api.retrieveBatch("batch_…");
 * ```
 */
export function createApiClient(config: ClientConfig): {
  uploadFile(path: string, purpose: string): Promise<FileObject>;
  createBatch(body: Record<string, unknown>): Promise<BatchObject>;
  retrieveBatch(id: string): Promise<BatchObject>;
  cancelBatch(id: string): Promise<BatchObject>;
  pauseBatch(id: string): Promise<BatchObject>;
  resultsSoFar(id: string, after: string | undefined): Promise<{ records: ReadableStream<Uint8Array>; next: string; complete: boolean }>;
  resumeBatch(id: string): Promise<BatchObject>;
  listBatches(limit: number): Promise<{ data: BatchObject[]; has_more: boolean }>;
  fileContent(id: string): Promise<ReadableStream<Uint8Array>>;
  batchEvents(id: string, signal: AbortSignal): Promise<AsyncGenerator<BatchObject> | null>;
  createMessageBatch(path: string): Promise<MessageBatchSummary>;
  retrieveMessageBatch(id: string): Promise<MessageBatchSummary>;
  cancelMessageBatch(id: string): Promise<MessageBatchSummary>;
  messageBatchResults(id: string): Promise<ReadableStream<Uint8Array>>;
} {
  const base = config.baseUrl.replace(/\/+$/, "");
  const call = async (path: string, init: RequestInit & { duplex?: "half" } = {}): Promise<Response> => {
    const headers = new Headers(init.headers);
    if (config.apiKey) headers.set("authorization", `Bearer ${config.apiKey}`);
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, { ...init, headers });
    } catch (error) {
      throw new ClientError(
        `cannot reach ${base}: ${(error as Error).message}. Is the server running? Check --base-url or OPENAI_BASE_URL.`,
        EXIT.unreachable,
      );
    }
    if (response.ok) return response;
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json() as { error?: { message?: string; param?: string | null } };
      if (body.error?.message) message = `${response.status}: ${body.error.message}${body.error.param ? ` (param: ${body.error.param})` : ""}`;
    } catch {
      // Not an OpenAI error body: keep the status line.
    }
    if (response.status === 401) message += ". Pass --api-key or set OPENAI_API_KEY.";
    throw new ClientError(message, response.status >= 500 ? EXIT.serverError : EXIT.rejected, response.status);
  };
  const json = async <T>(path: string, init?: RequestInit): Promise<T> => (await (await call(path, init)).json()) as T;

  return {
    async uploadFile(path, purpose) {
      try {
        await stat(path);
      } catch {
        throw new ClientError(`cannot read ${path}: no such file`, EXIT.usage);
      }
      const boundary = `batchspool-${crypto.randomUUID()}`;
      return await json<FileObject>("/files", {
        method: "POST",
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body: multipartBody({ purpose }, { name: "file", filename: basename(path), path }, boundary),
        duplex: "half",
      } as RequestInit);
    },
    createBatch: (body) =>
      json<BatchObject>("/batches", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
    retrieveBatch: (id) => json<BatchObject>(`/batches/${encodeURIComponent(id)}`),
    cancelBatch: (id) => json<BatchObject>(`/batches/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
    pauseBatch: (id) => json<BatchObject>(`/batches/${encodeURIComponent(id)}/pause`, { method: "POST" }),
    async resultsSoFar(id, after) {
      const query = after === undefined ? "" : `?after=${encodeURIComponent(after)}`;
      const response = await call(`/batches/${encodeURIComponent(id)}/results${query}`);
      const next = response.headers.get("batchspool-next");
      if (next === null || !response.body) {
        await response.body?.cancel();
        throw new ClientError("this server does not serve results while a batch runs (no batchspool-next header)", EXIT.rejected);
      }
      return { records: response.body, next, complete: response.headers.get("batchspool-complete") === "true" };
    },
    resumeBatch: (id) => json<BatchObject>(`/batches/${encodeURIComponent(id)}/resume`, { method: "POST" }),
    listBatches: (limit) => json(`/batches?limit=${limit}`),
    async batchEvents(id, signal) {
      let response: Response;
      try {
        response = await call(`/batches/${encodeURIComponent(id)}/events`, { headers: { accept: "text/event-stream" }, signal });
      } catch (error) {
        // A server without the extension (OpenAI, other compatible servers) answers 404.
        if (error instanceof ClientError && error.status === 404) return null;
        throw error;
      }
      if (!response.body || !/^text\/event-stream/.test(response.headers.get("content-type") ?? "")) {
        await response.body?.cancel();
        return null;
      }
      return batchEventsOf(response.body);
    },
    async fileContent(id) {
      const response = await call(`/files/${encodeURIComponent(id)}/content`);
      return response.body ?? new ReadableStream({ start: (c) => c.close() });
    },
    async createMessageBatch(path) {
      try {
        await stat(path);
      } catch {
        throw new ClientError(`cannot read ${path}: no such file`, EXIT.usage);
      }
      return await json<MessageBatchSummary>("/messages/batches", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: messageBatchBody(path),
        duplex: "half",
      } as RequestInit);
    },
    retrieveMessageBatch: (id) => json<MessageBatchSummary>(`/messages/batches/${encodeURIComponent(id)}`),
    cancelMessageBatch: (id) => json<MessageBatchSummary>(`/messages/batches/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
    async messageBatchResults(id) {
      const response = await call(`/messages/batches/${encodeURIComponent(id)}/results`);
      return response.body ?? new ReadableStream({ start: (c) => c.close() });
    },
  };
}

/** The batch objects of a `GET /v1/batches/{id}/events` stream (its `data` fields), one at a time. */
async function* batchEventsOf(body: ReadableStream<Uint8Array>): AsyncGenerator<BatchObject> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of body) {
    text += decoder.decode(chunk, { stream: true }).replaceAll("\r\n", "\n");
    let end;
    while ((end = text.indexOf("\n\n")) !== -1) {
      const data = text.slice(0, end).split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart());
      text = text.slice(end + 2);
      if (data.length) yield JSON.parse(data.join("\n")) as BatchObject;
    }
  }
}
