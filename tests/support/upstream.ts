/**
 * A real OpenAI-style upstream on 127.0.0.1 for engine tests. Each request's
 * `model` chooses its behaviour:
 *   ok | slow:<ms> | status:<code> | flaky:<n> | ratelimit:<n>:<seconds> | hang | drop | text | big:<bytes>
 * `flaky` and `ratelimit` fail the first <n> attempts of each distinct prompt.
 * It serves any path as chat completions, except `/v1/messages`: answered as
 * Anthropic's Messages API when started with `{ messages: true }`, else 404
 * (as a server without that route). Started with `{ failWith: status }` (or
 * after `setFailWith(status)`), it answers every request with that status (a
 * replica gone bad); with `{ capacity: n }`, a request that finds n in flight
 * is answered 429 at once, without Retry-After (a server's hidden limit).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";

export interface UpstreamRequest {
  at: number;
  /** The request's path, e.g. `/v1/chat/completions`. */
  path: string;
  /** Its `anthropic-version` header. */
  anthropicVersion: string | undefined;
  /** Its body, parsed. */
  body: Record<string, unknown>;
  /** Its body as received. */
  raw: string;
  model: string;
  prompt: string;
  authorization: string | undefined;
}

export interface Upstream {
  baseUrl: string;
  requests: UpstreamRequest[];
  /** Requests answered 429 for finding the capacity full. */
  refused: number;
  /** Answers every request with `status` from now on (null: as usual again). */
  setFailWith(status: number | null): void;
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of request) text += chunk;
  return text;
}

export async function startUpstream(options: { messages?: boolean; failWith?: number; capacity?: number } = {}): Promise<Upstream> {
  const requests: UpstreamRequest[] = [];
  let failWith = options.failWith ?? null;
  let inFlight = 0;
  const upstream = { requests, refused: 0 } as unknown as Upstream;
  const attempts = new Map<string, number>();
  const server: Server = createServer(async (request, response) => {
    // A client killed mid-request (the crash tests do that) is normal here: its request's
    // "aborted" error must not become an uncaught one (Deno's node:http emits it even with no listener).
    request.on("error", () => {});
    let body;
    let raw = "";
    try {
      raw = await readBody(request);
      body = JSON.parse(raw);
    } catch {
      return response.destroy(); // its body was cut short: nobody is waiting for an answer
    }
    const path = new URL(request.url!, "http://upstream").pathname;
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      response.writeHead(status, { "content-type": "application/json", "x-request-id": `up-${requests.length}`, ...headers });
      response.end(JSON.stringify(payload));
    };
    const model: string = body.model ?? "ok";
    const prompt: string = body.messages?.[0]?.content ?? body.input ?? "";
    requests.push({ at: Date.now(), path, anthropicVersion: request.headers["anthropic-version"] as string | undefined, body, raw, model, prompt, authorization: request.headers.authorization });
    const messagesApi = path === "/v1/messages";
    if (messagesApi && !options.messages) return send(404, { detail: "Not Found" });
    if (messagesApi && typeof body.model !== "string") {
      return send(400, { type: "error", error: { type: "invalid_request_error", message: "model: Field required" } });
    }
    if (failWith) return send(failWith, { error: { message: "replica broken", type: "server_error", param: null, code: null } });
    if (options.capacity !== undefined) {
      if (inFlight >= options.capacity) {
        upstream.refused++;
        return send(429, { error: { message: "too many requests in flight", type: "rate_limit_error", param: null, code: null } });
      }
      inFlight++;
      response.on("close", () => inFlight--);
    }
    const attempt = (attempts.get(prompt) ?? 0) + 1;
    attempts.set(prompt, attempt);
    const [kind, a, b] = model.split(":");
    const ok = () =>
      messagesApi ? send(200, {
        id: "msg_up",
        type: "message",
        role: "assistant",
        model,
        content: [{ type: "text", text: `echo ${prompt}` }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 10, output_tokens: 5 },
      }) : send(200, {
        id: "chatcmpl-up",
        object: "chat.completion",
        model,
        choices: [{ index: 0, message: { role: "assistant", content: `echo ${prompt}` }, finish_reason: "stop" }],
        usage: {
          prompt_tokens: 10,
          completion_tokens: 5,
          total_tokens: 15,
          prompt_tokens_details: { cached_tokens: 2 },
          completion_tokens_details: { reasoning_tokens: 1 },
        },
      });
    const error = (status: number, headers: Record<string, string> = {}) =>
      send(status, { error: { message: `upstream says ${status}`, type: "server_error", param: null, code: null } }, headers);
    switch (kind) {
      case "slow":
        return setTimeout(ok, Number(a));
      case "status":
        return error(Number(a));
      case "flaky":
        return attempt <= Number(a) ? error(500) : ok();
      case "ratelimit":
        return attempt <= Number(a) ? error(429, { "retry-after": b }) : ok();
      case "hang":
        return;
      case "drop":
        return request.socket.destroy();
      case "text":
        response.writeHead(200, { "content-type": "text/plain" });
        return response.end("not json");
      case "big":
        return send(200, { id: "chatcmpl-big", object: "chat.completion", filler: "x".repeat(Number(a)) });
      default:
        return ok();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  Object.assign(upstream, {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    setFailWith: (status: number | null) => {
      failWith = status;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  });
  return upstream;
}
