// Embeds batchspool with no permissions at all (run as `deno run` with no flags): memory storage, an
// in-process target, an upload and a batch through the app. Prints the batch's end.
import { createBatchEngine, createMemoryStorage, createInProcessTarget, createApp } from "../../mod.ts";
import { Hono } from "hono";
const models = new Hono().post("/v1/chat/completions", (c) => c.json({ choices: [], usage: { total_tokens: 1 } }));
const engine = createBatchEngine({ storage: createMemoryStorage(), target: createInProcessTarget(models.fetch) });
await engine.start();
const app = createApp({ engine });
const form = new FormData();
form.append("purpose", "batch");
form.append("file", new Blob([JSON.stringify({ custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "m" } }) + "\n"]), "in.jsonl");
const file = await (await app.request("/v1/files", { method: "POST", body: form })).json();
console.log("file", file.id);
const batch = await (await app.request("/v1/batches", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }) })).json();
for (;;) {
  const b = await (await app.request(`/v1/batches/${batch.id}`)).json();
  if (b.status === "completed" || b.status === "failed") { console.log("batch", b.status, JSON.stringify(b.request_counts)); break; }
  await new Promise((r) => setTimeout(r, 20));
}
await engine.close();
