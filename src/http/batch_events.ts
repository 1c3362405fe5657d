/**
 * `GET /v1/batches/{id}/events` (an extension): the batch object as
 * Server-Sent Events while it changes, ending with its final status. It looks
 * at the batch a few times a second and sends it when it differs from what
 * was sent last, so a client never falls behind by more than one look; a
 * client that reconnects (with `Last-Event-ID` or not) gets the current state
 * at once. A comment every few seconds keeps proxies and Bun's server from
 * closing a quiet stream.
 *
 * However many streams watch one batch, it is looked at once per interval
 * (the look is shared), and a key may hold at most `maxStreamsPerKey` streams
 * open (429 beyond): streams cannot be multiplied into load on the storage
 * the node's own work uses.
 *
 * @module
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { BatchEngine } from "../engine/engine.ts";
import type { BatchObject, BatchStatus } from "../batch/model/objects.ts";
import { type Clock, sleep } from "../shared/clock.ts";
import type { OwnerVariables } from "./access/auth.ts";
import { RequestError } from "./request_error.ts";

/** How often a stream looks at its batch, and how long it may stay silent. */
export interface BatchEventsOptions {
  /** Milliseconds between two looks at the batch (default 250: at most four events a second). */
  everyMs?: number;
  /** Longest silence before a keep-alive comment, in milliseconds (default 5 s). */
  keepAliveMs?: number;
  /** Most streams one API key (owner) may hold open at once (default {@link DEFAULT_MAX_STREAMS_PER_KEY}). */
  maxStreamsPerKey?: number;
}

/** The default cap on a key's open event streams. */
export const DEFAULT_MAX_STREAMS_PER_KEY = 32;

const FINAL: ReadonlySet<BatchStatus> = new Set(["completed", "failed", "expired", "cancelled"]);

/** The handler of `GET /:id/events`. */
export function batchEvents(engine: BatchEngine, clock: Clock, options: BatchEventsOptions = {}) {
  const everyMs = options.everyMs ?? 250;
  const keepAliveMs = options.keepAliveMs ?? 5_000;
  const maxStreams = options.maxStreamsPerKey ?? DEFAULT_MAX_STREAMS_PER_KEY;
  const openBy = new Map<string, number>();
  /** The latest look at each watched batch, shared by its streams while it is younger than an interval. */
  const looks = new Map<string, { at: number; batch: Promise<BatchObject> }>();
  const look = (owner: string, id: string): Promise<BatchObject> => {
    const key = `${owner}/${id}`;
    const latest = looks.get(key);
    if (latest && clock.monotonic() - latest.at < everyMs) return latest.batch;
    const batch = engine.getBatch(owner, id);
    looks.set(key, { at: clock.monotonic(), batch });
    batch.catch(() => looks.delete(key));
    return batch;
  };
  return async (c: Context<{ Variables: OwnerVariables }>) => {
    const owner = c.var.owner;
    const id = c.req.param("id")!;
    // Before the stream starts, so that an unknown batch is an ordinary 404.
    let batch = await engine.getBatch(owner, id);
    const open = openBy.get(owner) ?? 0;
    if (open >= maxStreams) {
      throw new RequestError(
        "too_many_streams",
        `This API key has ${open} event streams open, the most allowed (--max-event-streams); close one first.`,
      );
    }
    openBy.set(owner, open + 1);
    const release = () => {
      const left = (openBy.get(owner) ?? 1) - 1;
      if (left > 0) openBy.set(owner, left);
      else openBy.delete(owner);
    };
    c.header("x-accel-buffering", "no"); // nginx would otherwise hold the events back
    return streamSSE(c, async (stream) => {
      const closed = new AbortController();
      stream.onAbort(() => closed.abort());
      let sent = "";
      let quietSince = clock.monotonic();
      try {
        for (;;) {
          const text = JSON.stringify(batch);
          if (text !== sent) {
            await stream.writeSSE({ event: "batch", id: String(clock.now()), data: text });
            sent = text;
            quietSince = clock.monotonic();
          } else if (clock.monotonic() - quietSince >= keepAliveMs) {
            await stream.write(": keep-alive\n\n");
            quietSince = clock.monotonic();
          }
          if (FINAL.has(batch.status)) return;
          if (!(await sleep(clock, everyMs, closed.signal))) return;
          batch = await look(owner, id);
        }
      } finally {
        release();
      }
    });
  };
}
