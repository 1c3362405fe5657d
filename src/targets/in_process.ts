/**
 * The target that hands each line to a `fetch`-shaped handler in this process
 * (a Hono app's `fetch`): no network hop.
 *
 * @module
 */
import { type Clock, systemClock } from "../shared/clock.ts";
import { readPostResponse } from "./http/transport.ts";
import { RequestDeadlines } from "./request_deadlines.ts";
import { DEFAULT_MAX_RESPONSE_BYTES, targetErrorOf, targetResponse } from "./responses.ts";
import type { Target, TargetRequest, TargetResponse } from "./types.ts";

/** Anything that answers a `Request` with a `Response`, such as `app.fetch` of a Hono app. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/**
 * A target that hands each line to a handler in this process: no network hop.
 *
 * @example
 * ```ts
 * const model = new Hono().post("/v1/chat/completions", (c) => c.json({ choices: [] }));
 * const target = createInProcessTarget(model.fetch);
 * ```
 */
export function createInProcessTarget(
  handler: FetchHandler,
  options: { timeoutMs?: number; maxResponseBytes?: number; clock?: Clock } = {},
): Target {
  const timeoutMs = options.timeoutMs ?? 600_000;
  const limits = { maxResponseBytes: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES };
  const deadlines = new RequestDeadlines(timeoutMs, options.clock ?? systemClock);
  return {
    description: "in-process",
    async send(request: TargetRequest): Promise<TargetResponse> {
      const deadline = deadlines.start(request.signal);
      try {
        const response = await handler(
          new Request(`http://in-process${request.url}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: request.bodyText,
            signal: deadline.signal,
          }),
        );
        return targetResponse(await readPostResponse(response, limits));
      } catch (error) {
        throw targetErrorOf(error, request, deadline, timeoutMs, "the in-process handler failed");
      } finally {
        deadline.done();
      }
    },
  };
}
