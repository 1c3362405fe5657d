// A minimal OpenAI-style upstream for benchmarks, in its own process:
// node bench/_upstream_server.mjs <latency_ms>. Prints "port <n>" once listening.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const latency = Number(process.argv[2] ?? 0);
// The same answer the in-process benchmarks use.
const answer = JSON.stringify(JSON.parse(readFileSync(new URL("./chat_answer.json", import.meta.url), "utf8")));
const server = createServer((request, response) => {
  request.resume();
  request.on("end", () => {
    const reply = () => {
      response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) });
      response.end(answer);
    };
    if (latency > 0) setTimeout(reply, latency);
    else reply();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => console.log(`port ${server.address().port}`));
