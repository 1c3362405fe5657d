// A minimal OpenAI-style upstream for benchmarks, in its own process:
// node bench/_upstream_server.mjs <latency_ms>. Prints "port <n>" once listening.
import { createServer } from "node:http";

const latency = Number(process.argv[2] ?? 0);
const answer = JSON.stringify({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: "bench",
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 10, completion_tokens: 1, total_tokens: 11 },
});
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
