/**
 * `/v1/batches`: create (with an optional `Idempotency-Key`), retrieve,
 * cancel, list, the events of one batch, and (extensions) pause and resume.
 *
 * @module
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { BatchEngine } from "../engine/engine.ts";
import { checkIdempotencyKey, jsonFingerprint } from "../batch/model/idempotency.ts";
import type { OwnerVariables } from "./access/auth.ts";
import { batchEvents, type BatchEventsOptions } from "./batch_events.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import { integerParam, listBody } from "./query_params.ts";
import { RequestError } from "./request_error.ts";

/** Said on an answer given again for a retried `Idempotency-Key`. */
export const REPLAYED = { "idempotent-replayed": "true" };

/** Largest accepted create-batch body. */
const MAX_JSON_BYTES = 1024 * 1024;

/** The `/v1/batches` routes. */
export function batchesRoutes(
  engine: BatchEngine,
  clock: Clock = systemClock,
  events: BatchEventsOptions = {},
): Hono<{ Variables: OwnerVariables }> {
  const app = new Hono<{ Variables: OwnerVariables }>();

  app.post(
    "/",
    bodyLimit({
      maxSize: MAX_JSON_BYTES,
      onError: () => {
        throw new RequestError("payload_too_large", `The request body may be at most ${MAX_JSON_BYTES} bytes.`);
      },
    }),
    async (c) => {
      const type = c.req.header("content-type");
      if (type && !/^application\/([\w.+-]*\+)?json\s*(;|$)/i.test(type)) {
        throw new RequestError("unsupported_media_type", "The request body must be JSON (application/json).");
      }
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch (error) {
        throw new RequestError("invalid_request", "The request body is not valid JSON.", { cause: error });
      }
      const owner = c.var.owner;
      const key = checkIdempotencyKey(c.req.header("idempotency-key"));
      if (key === undefined) return c.json(await engine.createBatch(owner, body));
      const answer = await engine.idempotency.once(owner, "batches", key, jsonFingerprint(body), () => engine.createBatch(owner, body));
      return c.json(answer.value, 200, answer.replayed ? REPLAYED : {});
    },
  );

  app.get("/", async (c) => {
    const page = await engine.listBatches(c.var.owner, {
      after: c.req.query("after") || undefined,
      limit: integerParam(c.req.query("limit"), "limit"),
    });
    return c.json(listBody(page.data, page.has_more));
  });

  app.get("/:id", async (c) => c.json(await engine.getBatch(c.var.owner, c.req.param("id"))));

  app.get("/:id/events", batchEvents(engine, clock, events));

  app.post("/:id/cancel", async (c) => c.json(await engine.cancelBatch(c.var.owner, c.req.param("id"))));

  // batchspool's extension: the results recorded so far, to follow a batch while it runs.
  app.get("/:id/results", async (c) => {
    const found = await engine.resultsSoFar(c.var.owner, c.req.param("id"), c.req.query("after") || undefined);
    return new Response(found.records, {
      headers: {
        "content-type": "application/jsonl",
        "batchspool-next": found.next,
        "batchspool-complete": String(found.complete),
      },
    });
  });

  // batchspool's extensions: hold a batch (requests in flight finish) and let it go on.
  app.post("/:id/pause", async (c) => c.json(await engine.pauseBatch(c.var.owner, c.req.param("id"))));
  app.post("/:id/resume", async (c) => c.json(await engine.resumeBatch(c.var.owner, c.req.param("id"))));

  return app;
}
