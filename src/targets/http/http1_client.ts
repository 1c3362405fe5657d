/**
 * POSTs over HTTP/1.1 on `node:net` sockets, with kept-alive connections: the
 * HTTP target's transport for plain-`http:` upstreams on every runtime.
 *
 * Why not `fetch` or `node:http`: per request this client costs the calling
 * thread a fraction of what Node's `fetch` or `node:http` and Deno's `fetch`
 * do, and needs no other thread (BENCHMARKS.md, benchmark 2). No library fits:
 * `undici`'s current major needs Node ≥ 22.19, and Bun replaces `undici` with
 * its own `fetch`.
 *
 * What it does not do, because an OpenAI-compatible upstream does not need it:
 * TLS (`https:` goes through `fetch`), proxies, redirects, `Expect: 100-continue`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { connect, type Socket } from "node:net";
import { setTimeout } from "node:timers";
import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { ConnectionClosedError, Http1ProtocolError, type Http1Response, Http1ResponseParser } from "./http1_response.ts";
import { ResponseTooLargeError, TargetConfigError } from "./transport_errors.ts";
import type { PostFunction, PostResponse } from "./transport.ts";
import type { RequestAbort } from "../request_deadlines.ts";

/** Longest an idle connection is kept, unless the server's `Keep-Alive: timeout` asks for less. */
const IDLE_MS = 4_000;

interface Origin {
  hostname: string;
  port: number;
  /** Idle connections, most recently used last. */
  idle: Connection[];
  /** Closes connections idle past their limit while any is idle. */
  sweeper: { unref(): void } | null;
}

interface Exchange {
  parser: Http1ResponseParser;
  resolve(response: Http1Response): void;
  reject(error: Error): void;
}

interface Connection {
  socket: Socket;
  origin: Origin;
  exchange: Exchange | null;
  /** When it became idle, and how long it may stay so. */
  idleSince: number;
  idleLimit: number;
}

interface Endpoint {
  origin: Origin;
  /** The request line and the `Host` field. */
  head: string;
}

const decoder = new TextDecoder();

/**
 * The POST function over HTTP/1.1 for `http:` URLs. Connections are opened as
 * requests need them (one per request in flight), reused most recent first,
 * closed after 4 s idle (or sooner, as the server's `Keep-Alive` asks), and
 * never reused after an aborted, failed or connection-closing exchange. A
 * request on a kept-alive connection that the server closed before answering
 * any of it is sent again on a new one, once (the server closed it idle).
 * A body (decoded) longer than `maxResponseBytes` fails the request with
 * {@link ResponseTooLargeError}; a header or URL it refuses, with
 * {@link TargetConfigError}.
 *
 * @example
 * ```ts
 * const post = http1Post();
 * const deadline = new RequestDeadlines(60_000).start(signal);
 * const { status, text } = await post("http://127.0.0.1:8000/v1/chat/completions", headers, body, deadline);
 * ```
 */
export function http1Post(options: { maxResponseBytes?: number } = {}): PostFunction {
  const maxResponseBytes = options.maxResponseBytes ?? Infinity;
  const origins = new Map<string, Origin>();
  const endpoints = new Map<string, Endpoint>();
  const headerBlocks = new WeakMap<Readonly<Record<string, string>>, string>();

  const endpointOf = (url: string): Endpoint => {
    let endpoint = endpoints.get(url);
    if (!endpoint) {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new TargetConfigError(`${JSON.stringify(url)} is not a URL`);
      }
      if (parsed.protocol !== "http:") throw new TargetConfigError(`the HTTP/1.1 client cannot reach ${parsed.protocol} URLs`);
      const key = parsed.host;
      let origin = origins.get(key);
      if (!origin) {
        origin = { hostname: parsed.hostname.replace(/^\[|\]$/g, ""), port: Number(parsed.port || 80), idle: [], sweeper: null };
        origins.set(key, origin);
      }
      endpoint = { origin, head: `POST ${parsed.pathname}${parsed.search} HTTP/1.1\r\nhost: ${parsed.host}\r\n` };
      endpoints.set(url, endpoint);
    }
    return endpoint;
  };

  const headerBlockOf = (headers: Readonly<Record<string, string>>): string => {
    let block = headerBlocks.get(headers);
    if (block === undefined) {
      checkHeaders(headers);
      block = "";
      for (const [name, value] of Object.entries(headers)) block += `${name}: ${value}\r\n`;
      headerBlocks.set(headers, block);
    }
    return block;
  };

  return async (url, headers, body, abort) => {
    const { origin, head } = endpointOf(url);
    const request = `${head}${headerBlockOf(headers)}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    for (let attempt = 0;; attempt++) {
      const { connection, reused } = takeConnection(origin);
      const parser = new Http1ResponseParser(maxResponseBytes);
      try {
        return toPostResponse(await exchange(connection, parser, request, abort), maxResponseBytes);
      } catch (error) {
        // A kept-alive connection the server closed as this request went out: it answered none of it.
        if (attempt === 0 && reused && !parser.started && closedUnderUs(error)) continue;
        throw error;
      }
    }
  };
}

/**
 * Checks the headers a request is configured with: names that are tokens,
 * values without line breaks, none of those the client sets itself.
 *
 * @throws {TargetConfigError} naming the header at fault
 */
export function checkHeaders(headers: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower === "host" || lower === "content-length" || lower === "transfer-encoding" || lower === "connection") {
      throw new TargetConfigError(`the header ${name} is set by the HTTP client`);
    }
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name) || typeof value !== "string" || /[\r\n\0]/.test(value)) {
      throw new TargetConfigError(`invalid header ${JSON.stringify(name)}`);
    }
  }
}

/** Whether a request failed because its connection closed before any answer (not an abort). */
function closedUnderUs(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return error instanceof ConnectionClosedError || code === "ECONNRESET" || code === "EPIPE";
}

/** An idle connection that is still fresh (`reused`), or a new one. */
function takeConnection(origin: Origin): { connection: Connection; reused: boolean } {
  const now = performance.now();
  for (let connection = origin.idle.pop(); connection; connection = origin.idle.pop()) {
    if (now - connection.idleSince < connection.idleLimit && !connection.socket.destroyed) {
      connection.socket.ref();
      return { connection, reused: true };
    }
    connection.socket.destroy();
  }
  return { connection: openConnection(origin), reused: false };
}

function openConnection(origin: Origin): Connection {
  const socket = connect({ host: origin.hostname, port: origin.port });
  socket.setNoDelay(true);
  const connection: Connection = { socket, origin, exchange: null, idleSince: 0, idleLimit: IDLE_MS };
  const fail = (error: Error) => {
    closeConnection(connection);
    const pending = connection.exchange;
    connection.exchange = null;
    pending?.reject(error);
  };
  socket.on("data", (chunk: Uint8Array) => {
    const pending = connection.exchange;
    if (!pending) return fail(new Http1ProtocolError("the server sent bytes with no request waiting"));
    let response: Http1Response | null;
    try {
      response = pending.parser.push(chunk);
    } catch (error) {
      return fail(error as Error);
    }
    if (response) settle(connection, response);
  });
  socket.on("end", () => {
    const pending = connection.exchange;
    if (!pending) return closeConnection(connection);
    let response: Http1Response;
    try {
      response = pending.parser.end();
    } catch (error) {
      return fail(error as Error);
    }
    response.reusable = false;
    settle(connection, response);
  });
  socket.on("error", (error: Error) => fail(error));
  socket.on("close", () => fail(new ConnectionClosedError("the connection closed before the response ended")));
  return connection;
}

/** Sends `request` on `connection` and resolves with the whole response, read by `parser`. */
function exchange(
  connection: Connection,
  parser: Http1ResponseParser,
  request: string,
  abort: RequestAbort,
): Promise<Http1Response> {
  return new Promise<Http1Response>((resolve, reject) => {
    connection.exchange = { parser, resolve, reject };
    // A callback, not a signal: no AbortController or listener per request (see request_deadlines.ts).
    abort.onAbort((reason) => {
      if (connection.exchange?.resolve !== resolve) return;
      connection.exchange = null;
      closeConnection(connection);
      reject(reason instanceof Error ? reason : new Error(String(reason)));
    });
    if (connection.exchange?.resolve === resolve) connection.socket.write(request);
  });
}

/** Ends an exchange with its response; the connection goes back to its pool or is closed. */
function settle(connection: Connection, response: Http1Response): void {
  const pending = connection.exchange!;
  connection.exchange = null;
  // A response that came before the whole request was written leaves the connection mid-request.
  if (response.reusable && connection.socket.writableLength === 0) {
    connection.idleSince = performance.now();
    connection.idleLimit = idleLimitOf(response.headers.get("keep-alive"));
    connection.socket.unref();
    connection.origin.idle.push(connection);
    connection.origin.sweeper ??= setTimeout(() => sweep(connection.origin), IDLE_MS).unref();
  } else {
    closeConnection(connection);
  }
  pending.resolve(response);
}

/** Closes the connections idle past their limit; looks again later while any stays idle. */
function sweep(origin: Origin): void {
  origin.sweeper = null;
  const now = performance.now();
  for (const connection of [...origin.idle]) {
    if (now - connection.idleSince >= connection.idleLimit) closeConnection(connection);
  }
  // `node:timers`, whose timers have `unref()` on every runtime: an idle pool does not keep the process alive.
  if (origin.idle.length) origin.sweeper = setTimeout(() => sweep(origin), IDLE_MS).unref();
}

/** Takes a connection out of its pool and closes it. */
function closeConnection(connection: Connection): void {
  const at = connection.origin.idle.indexOf(connection);
  if (at >= 0) connection.origin.idle.splice(at, 1);
  connection.socket.destroy();
}

/** How long a connection may stay idle: {@link IDLE_MS}, or a second less than the server's `timeout=`. */
function idleLimitOf(keepAlive: string | null): number {
  const timeout = keepAlive && /(?:^|[,\s])timeout=(\d+)/i.exec(keepAlive);
  return timeout ? Math.min(IDLE_MS, (Number(timeout[1]) - 1) * 1000) : IDLE_MS;
}

function toPostResponse(response: Http1Response, maxBytes: number): PostResponse {
  const { headers } = response;
  return {
    status: response.status,
    headers,
    text: decoder.decode(decodeContent(response.body, headers.get("content-encoding"), maxBytes)),
  };
}

/**
 * Undoes the content coding a server applied although none was asked for
 * (`fetch` does too), up to `maxBytes` decoded.
 */
function decodeContent(body: Uint8Array, coding: string | null, maxBytes: number): Uint8Array {
  const limit = Number.isFinite(maxBytes) ? { maxOutputLength: maxBytes } : {};
  try {
    switch (coding?.toLowerCase()) {
      case undefined:
      case "":
      case "identity":
        return body;
      case "gzip":
      case "x-gzip":
        return gunzipSync(body, limit);
      case "deflate":
        return inflateSync(body, limit);
      case "br":
        return brotliDecompressSync(body, limit);
      default:
        throw new Http1ProtocolError(`unsupported content-encoding ${JSON.stringify(coding)}`);
    }
  } catch (error) {
    if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") throw new ResponseTooLargeError(maxBytes);
    throw error;
  }
}
