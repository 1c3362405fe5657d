/**
 * Reading a request's body as it arrives, by the cheapest way the server offers.
 *
 * @module
 */
import type { Context } from "hono";

/** What `@hono/node-server` passes as `c.env.incoming`: Node's request, an async iterable of its body. */
interface NodeIncoming extends AsyncIterable<Uint8Array> {
  readableDidRead: boolean;
  listenerCount(event: string): number;
}

function nodeIncoming(c: Context): NodeIncoming | null {
  const incoming = (c.env as { incoming?: Partial<NodeIncoming> } | undefined)?.incoming;
  if (!incoming || typeof incoming[Symbol.asyncIterator] !== "function") return null;
  if (typeof incoming.listenerCount !== "function" || typeof incoming.readableDidRead !== "boolean") return null;
  // Read directly only if nothing (such as the `Request` body's adapter) has started on it.
  return incoming.readableDidRead || incoming.listenerCount("data") > 0 ? null : incoming as NodeIncoming;
}

/**
 * The body of `c`'s request as byte chunks, or null when it has none.
 *
 * Under `@hono/node-server` this is Node's request itself: its `Request.body`
 * is made by `Readable.toWeb`, which copies every chunk and adds a Web stream's
 * promises per chunk, a visible share of an upload's main thread. Elsewhere it
 * is `c.req.raw.body`.
 *
 * @example
 * ```ts
 * const body = requestBody(c);
 * if (body) for await (const chunk of body) hash.update(chunk);
 * ```
 */
export function requestBody(c: Context): AsyncIterable<Uint8Array> | null {
  return nodeIncoming(c) ?? c.req.raw.body;
}
