/**
 * `npm run demo`: the whole loop against the built-in mock target, through the
 * official openai SDK — start a server, upload a JSONL file, create a batch,
 * wait for it, download and print the results.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { createApp, createBatchEngine, createFsStorage, createMockTarget, silentLogger } from "../mod.ts";
import { serve } from "../src/runtime/serve.ts";

const dir = await mkdtemp(join(tmpdir(), "batchspool-demo-"));
const storage = await createFsStorage({ dir });
const engine = createBatchEngine({ storage, target: createMockTarget({ latencyMs: 30 }), logger: silentLogger });
await engine.start();
const server = await serve({ fetch: createApp({ engine }).fetch, hostname: "127.0.0.1", port: 0, maxRequestBodySize: 2 ** 30 });
console.log(`batchspool (mock target) on http://127.0.0.1:${server.port}/v1, data in ${dir}\n`);

const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: "demo" });
const questions = ["What is a batch API?", "Why spool to disk?", "What does exactly-once mean?", "Name a prime."];
const jsonl = questions.map((content, i) =>
  JSON.stringify({
    custom_id: `question-${i + 1}`,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "demo-model", messages: [{ role: "user", content }] },
  })
).join("\n");

const file = await client.files.create({ file: await toFile(new TextEncoder().encode(jsonl), "questions.jsonl"), purpose: "batch" });
console.log(`uploaded ${file.filename} as ${file.id} (${file.bytes} bytes)`);
let batch = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
console.log(`created ${batch.id} (${batch.status})`);
while (!["completed", "failed", "expired", "cancelled"].includes(batch.status)) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  batch = await client.batches.retrieve(batch.id);
  console.log(`  ${batch.status}: ${batch.request_counts?.completed}/${batch.request_counts?.total}`);
}
console.log(`\n${batch.id} ${batch.status}; usage ${JSON.stringify(batch.usage)}\n`);
const output = await (await client.files.content(batch.output_file_id!)).text();
for (const line of output.trim().split("\n")) {
  const record = JSON.parse(line);
  console.log(`${record.custom_id}: ${record.response.body.choices[0].message.content}`);
}

await server.close();
await engine.close();
await storage.close();
await rm(dir, { recursive: true, force: true });
