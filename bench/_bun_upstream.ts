// A minimal OpenAI-style upstream on Bun's own HTTP server, answering at once:
// bun bench/_bun_upstream.ts. Prints "port <n>" once listening. The fastest
// local upstream here, so that the client's cost is what shows.
import { readFileSync } from "node:fs";

const answer = JSON.stringify(JSON.parse(readFileSync(new URL("./chat_answer.json", import.meta.url), "utf8")));
// deno-lint-ignore no-explicit-any
const server = (globalThis as any).Bun.serve({
  port: 0,
  hostname: "127.0.0.1",
  async fetch(request: Request) {
    await request.arrayBuffer();
    return new Response(answer, { headers: { "content-type": "application/json" } });
  },
});
console.log(`port ${server.port}`);
