/**
 * `/v1/messages/batches`: Anthropic's Message Batches API, on the same
 * engine as OpenAI's batches: create (the body streamed into the batch's
 * input as it arrives), retrieve, list, cancel, delete, and results.
 *
 * @module
 */
import { Hono } from "hono";
import type { BatchEngine, BatchView } from "../../engine/engine.ts";
import { readLines } from "../../batch/input/line_splitter.ts";
import { messageBatchInput } from "../../batch/message_batches/batch_requests.ts";
import { messageBatchResult } from "../../batch/message_batches/batch_results.ts";
import { batchIdOfMessageBatch, type MessageBatch, messageBatchIdOf, toMessageBatch } from "../../batch/message_batches/message_batch.ts";
import { scheduleFromHeaders } from "../../batch/model/batch_params.ts";
import { BatchError } from "../../batch/model/errors.ts";
import type { Clock } from "../../shared/clock.ts";
import { iteratorStream } from "../../shared/iterator_stream.ts";
import { requestBody } from "../../runtime/request_body.ts";
import type { OwnerVariables } from "../access/auth.ts";
import { limitIdle } from "../idle_body.ts";
import { integerParam } from "../query_params.ts";
import { RequestError } from "../request_error.ts";
import { REPLAYED } from "../batches_routes.ts";
import { checkIdempotencyKey } from "../../batch/model/idempotency.ts";

/** Options for {@link messageBatchesRoutes}. */
export interface MessageBatchesRoutesOptions {
  /** A create whose client sends nothing for this long is dropped with a 408. */
  idleTimeoutMs: number;
  clock: Clock;
  /** The server's base URL as clients reach it (see `createApp`); by default each request's own. */
  publicUrl?: string;
}

const notFound = (id: string) => new BatchError("not_found", `No such message batch: ${id}`, { param: "message_batch_id" });

/** The part of a request's URL up to and including `/v1/messages/batches` (wherever the app is mounted). */
function routesBase(url: string): string {
  const { origin, pathname } = new URL(url);
  const at = pathname.indexOf("/v1/messages/batches");
  return origin + pathname.slice(0, at + "/v1/messages/batches".length);
}

/** The `/v1/messages/batches` routes (mounted there). */
export function messageBatchesRoutes(engine: BatchEngine, options: MessageBatchesRoutesOptions): Hono<{ Variables: OwnerVariables }> {
  const app = new Hono<{ Variables: OwnerVariables }>();

  const base = (url: string) => options.publicUrl ? `${options.publicUrl}/v1/messages/batches` : routesBase(url);
  const shown = (view: BatchView, url: string): MessageBatch =>
    toMessageBatch(view.batch, view.messageBatch!, `${base(url)}/${messageBatchIdOf(view.batch.id)}/results`);

  /** The message batch `id` names, of this owner (another owner's, or an OpenAI batch, is not found). */
  const viewOf = async (owner: string, id: string): Promise<BatchView> => {
    const batchId = batchIdOfMessageBatch(id);
    if (batchId === null) throw notFound(id);
    const view = await engine.getBatchView(owner, batchId).catch((error) => {
      throw error instanceof BatchError && error.code === "not_found" ? notFound(id) : error;
    });
    if (!view.messageBatch) throw notFound(id);
    return view;
  };

  app.post("/", async (c) => {
    const type = c.req.header("content-type");
    if (type && !/^application\/([\w.+-]*\+)?json\s*(;|$)/i.test(type)) {
      throw new RequestError("unsupported_media_type", "The request body must be JSON (application/json).");
    }
    const idempotencyKey = checkIdempotencyKey(c.req.header("idempotency-key"));
    const body = requestBody(c);
    if (!body) throw new RequestError("invalid_request", "requests: field required", { param: "requests" });
    const owner = c.var.owner;
    // batchspool's scheduling extensions, as headers: Anthropic's body has no room for them.
    const schedule = scheduleFromHeaders(c.req.header("batchspool-priority"), c.req.header("batchspool-max-concurrency"));
    const input = messageBatchInput(limitIdle(body, options.idleTimeoutMs, options.clock));
    const received = await engine.files.receive({
      owner,
      filename: "message_batch_requests.jsonl",
      purpose: "batch",
      content: input.lines,
      messageBatch: true,
    });
    const create = async (): Promise<MessageBatch> => {
      const file = await engine.files.commit(received, { purpose: "batch" });
      try {
        const batch = await engine.createBatch(
          owner,
          { input_file_id: file.id, endpoint: "/v1/messages", completion_window: "24h", ...schedule },
          { messageBatchRequests: input.requests() },
        );
        return shown({ batch, messageBatch: { requests: input.requests(), results_before_end: null } }, c.req.url);
      } catch (error) {
        await engine.files.delete(owner, file.id).catch(() => {});
        throw error;
      }
    };
    if (idempotencyKey === undefined) return c.json(await create());
    try {
      // The same requests make the same input, byte for byte: its SHA-256 is the request's fingerprint.
      const answer = await engine.idempotency.once(owner, "message_batches", idempotencyKey, received.sha256, create);
      if (answer.replayed) await engine.files.discard(received);
      return c.json(answer.value, 200, answer.replayed ? REPLAYED : {});
    } catch (error) {
      await engine.files.discard(received).catch(() => {});
      throw error;
    }
  });

  app.get("/", async (c) => {
    const limit = integerParam(c.req.query("limit"), "limit") ?? 20;
    if (limit < 1 || limit > 1000) throw new RequestError("invalid_request", "limit: must be between 1 and 1000", { param: "limit" });
    const idOf = (name: "after_id" | "before_id") => {
      const id = c.req.query(name) || undefined;
      if (id === undefined) return undefined;
      const batchId = batchIdOfMessageBatch(id);
      if (batchId === null) throw new RequestError("invalid_request", `${name}: not a message batch id`, { param: name });
      return batchId;
    };
    const after = idOf("after_id");
    const before = idOf("before_id");
    if (after !== undefined && before !== undefined) {
      throw new RequestError("invalid_request", "after_id and before_id cannot be given together", { param: "before_id" });
    }
    const page = await engine.listBatchViews(c.var.owner, { after, before, limit, messageBatches: true });
    const data = page.data.map((view) => shown(view, c.req.url));
    return c.json({ data, has_more: page.has_more, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null });
  });

  app.get("/:id", async (c) => c.json(shown(await viewOf(c.var.owner, c.req.param("id")), c.req.url)));

  app.post("/:id/cancel", async (c) => {
    const view = await viewOf(c.var.owner, c.req.param("id"));
    if (view.batch.status !== "cancelling" && !isEnded(view)) await engine.cancelBatch(c.var.owner, view.batch.id);
    // Anthropic answers a cancel of an ended batch with the batch as it is.
    return c.json(shown(await viewOf(c.var.owner, c.req.param("id")), c.req.url));
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    const view = await viewOf(c.var.owner, id);
    if (!isEnded(view)) throw new BatchError("conflict", `Message batch ${id} cannot be deleted until it has ended; cancel it first.`);
    await engine.deleteBatch(c.var.owner, view.batch.id);
    return c.json({ id, type: "message_batch_deleted" });
  });

  app.get("/:id/results", async (c) => {
    const id = c.req.param("id");
    const owner = c.var.owner;
    const view = await viewOf(owner, id);
    if (!isEnded(view)) throw new BatchError("not_found", `Message batch ${id} has not ended: its results are not ready.`);
    const fileIds = [view.batch.output_file_id, view.batch.error_file_id].filter((fileId) => fileId !== null);
    const encoder = new TextEncoder();
    // Its output file's results, then its error file's, a group of lines at a time.
    const results = (async function* () {
      for (const fileId of fileIds) {
        const { stream } = await engine.files.content(owner, fileId);
        for await (const group of readLines(stream)) {
          let text = "";
          for (const line of group) if (line.text) text += messageBatchResult(line.text) + "\n";
          if (text) yield encoder.encode(text);
        }
      }
    })();
    return new Response(iteratorStream(results), { headers: { "content-type": "application/x-jsonl" } });
  });

  return app;
}

function isEnded(view: BatchView): boolean {
  return ["completed", "failed", "expired", "cancelled"].includes(view.batch.status);
}
