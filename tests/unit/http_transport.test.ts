import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { test } from "node:test";
import { createServer as createTcpServer } from "node:net";
import { gzipSync } from "node:zlib";
import { http1Post } from "../../src/targets/http/http1_client.ts";
import { fetchPost, type PostFunction } from "../../src/targets/http/transport.ts";
import type { RequestAbort } from "../../src/targets/request_deadlines.ts";
import { TargetConfigError } from "../../src/targets/http/transport_errors.ts";

type Handler = (request: IncomingMessage, body: string, response: ServerResponse) => void;

interface TestServer {
  /** Connections accepted so far. */
  connections: number;
  http: Server;
  /** Closes every open connection (from the server's side). */
  closeIdle(): void;
  /** Resolves once the server has received `count` requests in all. */
  received(count: number): Promise<void>;
  /** Resolves once no connection is open. */
  allClosed(): Promise<void>;
}

/** A real server on 127.0.0.1 that counts its connections and requests. */
async function withServer(handler: Handler, run: (url: string, server: TestServer) => Promise<void>) {
  const sockets = new Set<Socket>();
  const watchers = new Set<() => void>();
  const notify = () => {
    for (const watcher of watchers) watcher();
  };
  let requests = 0;
  const until = (condition: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => condition() && (watchers.delete(check), resolve());
      watchers.add(check);
      check();
    });
  const state: TestServer = {
    connections: 0,
    http: null as unknown as Server,
    closeIdle: () => {
      for (const socket of sockets) socket.destroy();
    },
    received: (count) => until(() => requests >= count),
    allClosed: () => until(() => sockets.size === 0),
  };
  const server = createServer(async (request, response) => {
    let body = "";
    for await (const chunk of request) body += chunk;
    requests++;
    notify();
    handler(request, body, response);
  });
  state.http = server;
  server.on("connection", (socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on("close", () => {
      sockets.delete(socket);
      notify();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`, state);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A request abort driven by `signal` (each request listens once: fine for a handful). */
const abortOf = (signal: AbortSignal): RequestAbort => ({
  signal,
  onAbort: (listener) =>
    signal.aborted ? listener(signal.reason) : signal.addEventListener("abort", () => listener(signal.reason), { once: true }),
});
const never = abortOf(new AbortController().signal);
const transports: [string, () => PostFunction][] = [["fetch", fetchPost], ["HTTP/1.1", http1Post]];

/** A raw TCP server on 127.0.0.1 that answers each connection's first bytes with `answer`, then ends it. */
async function withRawServer(answer: string, run: (url: string) => Promise<void>) {
  const server = createTcpServer((socket) => {
    socket.once("data", () => socket.end(answer));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

for (const [name, make] of transports) {
  test(`${name} transport: sends the JSON body and headers, returns status, headers and the whole text`, () =>
    withServer((request, body, response) => {
      response.setHeader("set-cookie", ["a=1", "b=2"]);
      response.writeHead(201, { "content-type": "application/json", "x-request-id": "up-1" });
      response.end(JSON.stringify({ got: JSON.parse(body), type: request.headers["content-type"], auth: request.headers.authorization }));
    }, async (url) => {
      const post = make();
      const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "héllo ✓" }] });
      const answer = await post(url, { "content-type": "application/json", authorization: "Bearer k" }, body, never);
      assert.equal(answer.status, 201);
      assert.equal(answer.headers.get("x-request-id"), "up-1");
      assert.equal(answer.headers.get("absent"), null);
      assert.match(answer.headers.get("set-cookie") ?? "", /a=1.*b=2/);
      assert.deepEqual(JSON.parse(answer.text), { got: JSON.parse(body), type: "application/json", auth: "Bearer k" });
    }));

  test(`${name} transport: a body sent in pieces, a multi-byte character split between them, arrives whole`, () =>
    withServer((_request, _body, response) => {
      const bytes = new TextEncoder().encode(JSON.stringify({ text: "naïve — ✓ 😀".repeat(50) }));
      response.writeHead(200, { "content-type": "application/json" });
      let at = 0;
      const next = () => {
        if (at >= bytes.length) return response.end();
        response.write(bytes.subarray(at, at + 7));
        at += 7;
        setTimeout(next, 0);
      };
      next();
    }, async (url) => {
      const answer = await make()(url, {}, "{}", never);
      assert.equal(JSON.parse(answer.text).text, "naïve — ✓ 😀".repeat(50));
    }));

  test(`${name} transport: an abort ends a request that gets no answer`, () =>
    withServer(() => {}, async (url, server) => {
      const controller = new AbortController();
      const pending = make()(url, {}, "{}", abortOf(controller.signal));
      await server.received(1);
      controller.abort(new DOMException("timed out", "TimeoutError"));
      await assert.rejects(pending);
    }));

  test(`${name} transport: a gzip-encoded answer is decoded`, () =>
    withServer((_request, _body, response) => {
      response.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" });
      response.end(gzipSync(JSON.stringify({ ok: "✓" })));
    }, async (url) => {
      assert.deepEqual(JSON.parse((await make()(url, {}, "{}", never)).text), { ok: "✓" });
    }));

  test(`${name} transport: an answer with no length ends with its connection`, () =>
    withRawServer('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"whole":true}', async (url) => {
      const answer = await make()(url, {}, "{}", never);
      assert.equal(answer.status, 200);
      assert.deepEqual(JSON.parse(answer.text), { whole: true });
    }));

  test(`${name} transport: an answer that is not HTTP rejects`, () =>
    withRawServer("SSH-2.0-OpenSSH_9.6\r\n\r\n", async (url) => {
      await assert.rejects(make()(url, {}, "{}", never));
    }));

  test(`${name} transport: a connection closed before the end of the body rejects`, () =>
    withServer((_request, _body, response) => {
      response.writeHead(200, { "content-type": "application/json", "content-length": "1000" });
      response.write('{"partial":');
      setTimeout(() => response.socket?.destroy(), 20);
    }, async (url) => {
      await assert.rejects(make()(url, {}, "{}", never));
    }));
}

test("HTTP/1.1 transport: requests in turn share one kept-alive connection, and one the server closed is not reused", () =>
  withServer((_request, _body, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    response.end("{}");
  }, async (url, server) => {
    const post = http1Post();
    for (let i = 0; i < 5; i++) assert.equal((await post(url, {}, "{}", never)).status, 200);
    assert.equal(server.connections, 1);
    // The server closes the idle connection. Whether or not the client has noticed yet, the next request
    // succeeds on a new connection: the closed one is not reused, or its request is sent again once.
    server.closeIdle();
    assert.equal((await post(url, {}, "{}", never)).status, 200);
    assert.equal(server.connections, 2);
  }));

test("HTTP/1.1 transport: one connection per request in flight, reused by the next ones", () =>
  withServer((_request, _body, response) => {
    setTimeout(() => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end("{}");
    }, 20);
  }, async (url, server) => {
    const post = http1Post();
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(Array.from({ length: 4 }, () => post(url, {}, "{}", never)));
      assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200, 200]);
    }
    assert.equal(server.connections, 4);
  }));

test("HTTP/1.1 transport: a connection is not kept longer than the server's Keep-Alive timeout allows", () =>
  withServer((_request, _body, response) => {
    response.writeHead(200, { "content-type": "application/json", "keep-alive": "timeout=1" });
    response.end("{}");
  }, async (url, server) => {
    const post = http1Post();
    assert.equal((await post(url, {}, "{}", never)).status, 200);
    assert.equal((await post(url, {}, "{}", never)).status, 200);
    assert.equal(server.connections, 2);
  }));

test("HTTP/1.1 transport: an aborted request's connection is closed, not reused", () =>
  withServer((request, _body, response) => {
    if (request.headers["x-hang"]) return;
    response.writeHead(200, { "content-type": "application/json" });
    response.end("{}");
  }, async (url, server) => {
    const post = http1Post();
    const controller = new AbortController();
    const pending = post(url, { "x-hang": "1" }, "{}", abortOf(controller.signal));
    await server.received(1);
    controller.abort();
    await assert.rejects(pending);
    // The client closes it: the server sees it go (a reused one would stay open for the next request).
    await server.allClosed();
    assert.equal((await post(url, {}, "{}", never)).status, 200);
    assert.equal(server.connections, 2);
  }));

test("HTTP/1.1 transport: refuses URLs it cannot reach and headers it sets itself or that would break the request", async () => {
  const post = http1Post();
  await assert.rejects(post("https://127.0.0.1:1/v1/x", {}, "{}", never), TargetConfigError);
  await assert.rejects(post("http://127.0.0.1:1/v1/x", { "Content-Length": "5" }, "{}", never), /set by the HTTP client/);
  await assert.rejects(post("http://127.0.0.1:1/v1/x", { "x-a": "1\r\nx-b: 2" }, "{}", never), /invalid header/);
  await assert.rejects(post("http://127.0.0.1:1/v1/x", { "bad name": "1" }, "{}", never), /invalid header/);
});

test("HTTP/1.1 transport: a refused connection rejects", async () => {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await assert.rejects(http1Post()(`http://127.0.0.1:${port}/v1/x`, {}, "{}", never));
});
