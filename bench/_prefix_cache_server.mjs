// An OpenAI-style upstream that simulates a prefix cache, in its own process:
// node bench/_prefix_cache_server.mjs <hit_ms> <miss_ms> <cache_size>. Prints "port <n>".
// A request whose leading messages (all but its last) were computed recently answers in
// hit_ms; otherwise in miss_ms, and its prefix is cached (least recently used out first)
// once computed, miss_ms - hit_ms after it arrived (the prefill). GET /stats: hits, misses.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const [hitMs, missMs, size] = process.argv.slice(2, 5).map(Number);
const answer = JSON.stringify(JSON.parse(readFileSync(new URL("./chat_answer.json", import.meta.url), "utf8")));
/** Prefix → when it is computed (ms); insertion order is recency. */
const cache = new Map();
const stats = { hits: 0, misses: 0 };
const server = createServer((request, response) => {
  if (request.method === "GET") {
    response.writeHead(200, { "content-type": "application/json" });
    return response.end(JSON.stringify(stats));
  }
  let text = "";
  request.setEncoding("utf8");
  request.on("data", (chunk) => (text += chunk));
  request.on("end", () => {
    const messages = JSON.parse(text).messages ?? [];
    const prefix = JSON.stringify(messages.slice(0, -1));
    const now = performance.now();
    const readyAt = cache.get(prefix);
    const hit = readyAt !== undefined && readyAt <= now;
    if (hit) stats.hits++;
    else stats.misses++;
    cache.delete(prefix);
    cache.set(prefix, readyAt ?? now + (missMs - hitMs));
    while (cache.size > size) cache.delete(cache.keys().next().value);
    setTimeout(() => {
      response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) });
      response.end(answer);
    }, hit ? hitMs : missMs);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => console.log(`port ${server.address().port}`));
