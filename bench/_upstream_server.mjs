// A minimal OpenAI-style upstream for benchmarks, in its own process:
// node bench/_upstream_server.mjs <latency_ms> [capacity]. Prints "port <n>" once listening.
// With a capacity, a request that finds that many in flight is answered 429 at once (as a
// server that refuses above N in flight); GET /stats says how many were served and refused.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const latency = Number(process.argv[2] ?? 0);
const capacity = Number(process.argv[3] ?? Infinity);
let inFlight = 0;
const stats = { served: 0, refused: 0 };
const refusal = JSON.stringify({ error: { message: "Too many requests in flight", type: "rate_limit_error", param: null, code: null } });
// The same answer the in-process benchmarks use.
const answer = JSON.stringify(JSON.parse(readFileSync(new URL("./chat_answer.json", import.meta.url), "utf8")));
const server = createServer((request, response) => {
  request.resume();
  if (request.method === "GET") {
    response.writeHead(200, { "content-type": "application/json" });
    return response.end(JSON.stringify(stats));
  }
  request.on("end", () => {
    if (inFlight >= capacity) {
      stats.refused++;
      response.writeHead(429, { "content-type": "application/json", "content-length": Buffer.byteLength(refusal) });
      return response.end(refusal);
    }
    inFlight++;
    const reply = () => {
      inFlight--;
      stats.served++;
      response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) });
      response.end(answer);
    };
    if (latency > 0) setTimeout(reply, latency);
    else reply();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => console.log(`port ${server.address().port}`));
