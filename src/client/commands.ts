/**
 * The client commands of the CLI: `submit`, `status`, `cancel`, `pause`,
 * `resume`, `list`, `download` and `retry`. They speak only the public HTTP
 * API (and batchspool's extensions to it, for `pause` and `resume`).
 *
 * @module
 */
import { open } from "node:fs/promises";
import process from "node:process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import type { BatchObject } from "../batch/model/objects.ts";
import { type ClientConfig, ClientError, createApiClient, EXIT, isMessageBatchFile, type MessageBatchSummary } from "./api_client.ts";
import { retryBatch } from "./retry.ts";
import { ProgressView } from "./progress_bar.ts";
import { CLIENT_USAGE } from "./usage.ts";

export { CLIENT_USAGE };

const COMMON = {
  "base-url": { type: "string" },
  "api-key": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function configFor(values: { "base-url"?: string; "api-key"?: string }): ClientConfig {
  return {
    baseUrl: values["base-url"] ?? process.env.OPENAI_BASE_URL ?? "http://127.0.0.1:8787/v1",
    apiKey: values["api-key"] ?? process.env.OPENAI_API_KEY,
  };
}

function clientFor(values: { "base-url"?: string; "api-key"?: string }) {
  return createApiClient(configFor(values));
}

function summary(batch: BatchObject): string {
  const { total, completed, failed } = batch.request_counts;
  const paused = typeof batch.paused_at === "number" ? ` (paused since ${new Date(batch.paused_at * 1000).toISOString()})` : "";
  const lines = [
    `${batch.id}  ${batch.status}${paused}`,
    `  endpoint   ${batch.endpoint}`,
    `  requests   ${completed} completed, ${failed} failed, ${total} total`,
  ];
  if (batch.priority) lines.push(`  priority   ${batch.priority}`);
  if (batch.max_concurrency) lines.push(`  at most    ${batch.max_concurrency} requests in flight`);
  if (batch.output_file_id) lines.push(`  output     ${batch.output_file_id}`);
  if (batch.error_file_id) lines.push(`  errors     ${batch.error_file_id}`);
  for (const error of batch.errors?.data ?? []) {
    lines.push(`  error      ${error.line ? `line ${error.line}: ` : ""}${error.code}: ${error.message}`);
  }
  return lines.join("\n");
}

function messageBatchSummary(batch: MessageBatchSummary): string {
  const counts = Object.entries(batch.request_counts).map(([kind, n]) => `${n} ${kind}`).join(", ");
  return [`${batch.id}  ${batch.processing_status}`, `  requests   ${counts}`, ...(batch.results_url ? [`  results    ${batch.results_url}`] : [])].join("\n");
}

/** An Anthropic message batch's id (`msgbatch_…`); its batch is `batch_` and the same suffix. */
const isMessageBatchId = (id: string) => id.startsWith("msgbatch_");

/** Creates a message batch from a file of Anthropic batch requests; with `wait`, follows it and saves its results. */
async function submitMessageBatch(api: ReturnType<typeof createApiClient>, path: string, wait: boolean, out: string | undefined): Promise<number> {
  const created = await api.createMessageBatch(path);
  console.error(`created ${created.id} from ${path} (${created.request_counts.processing} requests)`);
  console.log(created.id);
  if (!wait) return EXIT.ok;
  // Followed as the batch it is (its events stream, where the server has one).
  await waitForBatch(api, `batch_${created.id.slice("msgbatch_".length)}`);
  const done = await api.retrieveMessageBatch(created.id);
  console.error(messageBatchSummary(done));
  const saveTo = out ?? `${created.id}_results.jsonl`;
  const bytes = await saveStream(await api.messageBatchResults(created.id), saveTo);
  console.error(`saved ${saveTo} (${bytes} bytes)`);
  return done.request_counts.canceled || done.request_counts.expired ? EXIT.batchNotCompleted : EXIT.ok;
}

const FINAL = new Set(["completed", "failed", "expired", "cancelled"]);

async function saveStream(stream: ReadableStream<Uint8Array>, path: string): Promise<number> {
  const handle = await open(path, "w");
  let bytes = 0;
  try {
    for await (const chunk of stream) {
      await handle.write(chunk);
      bytes += chunk.length;
    }
  } finally {
    await handle.close();
  }
  return bytes;
}

async function downloadResults(
  api: ReturnType<typeof createApiClient>,
  batch: BatchObject,
  outPath: string | undefined,
  errorsPath: string | undefined,
): Promise<void> {
  for (const [fileId, path] of [
    [batch.output_file_id, outPath ?? `${batch.id}_output.jsonl`],
    [batch.error_file_id, errorsPath ?? `${batch.id}_errors.jsonl`],
  ] as const) {
    if (!fileId) continue;
    const bytes = await saveStream(await api.fileContent(fileId), path);
    console.error(`saved ${path} (${bytes} bytes)`);
  }
}

/** How long `download --follow` waits between two reads of a running batch's results. */
const FOLLOW_EVERY_MS = 1_000;

/** Writes a batch's results to `path` as they are recorded, until it ends; exit 1 unless it completed. */
async function followResults(api: ReturnType<typeof createApiClient>, id: string, path: string): Promise<number> {
  const handle = await open(path, "w");
  let after: string | undefined;
  let lines = 0;
  try {
    for (;;) {
      const found = await api.resultsSoFar(id, after);
      for await (const chunk of found.records) {
        await handle.write(chunk);
        for (const byte of chunk) if (byte === 10) lines++;
      }
      after = found.next;
      if (found.complete) break;
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_EVERY_MS));
    }
  } finally {
    await handle.close();
  }
  const batch = await api.retrieveBatch(id);
  console.error(`saved ${path} (${lines} results; the batch is ${batch.status})`);
  return batch.status === "completed" ? EXIT.ok : EXIT.batchNotCompleted;
}

/** Asks a yes/no question on the terminal. */
function ask(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      resolve(/^y(es)?$/i.test(answer.trim()));
    });
  });
}

/**
 * Follows the batch until it ends, drawing progress: through its event stream
 * when the server offers one (batchspool does), polling otherwise or once the
 * stream breaks. Ctrl-C asks whether to cancel.
 */
async function waitForBatch(api: ReturnType<typeof createApiClient>, id: string): Promise<BatchObject> {
  const tty = Boolean(process.stderr.isTTY);
  const view = new ProgressView();
  let interrupted = false;
  const stream = new AbortController();
  const onInterrupt = () => {
    interrupted = true;
    stream.abort();
  };
  process.on("SIGINT", onInterrupt);
  let lastPrinted = 0;
  /** Draws the batch; true once it has ended. */
  const show = (batch: BatchObject): boolean => {
    const now = Date.now();
    if (tty) process.stderr.write(`\r\x1b[2K${view.render(batch, now, true)}`);
    else if (now - lastPrinted >= 5_000 || FINAL.has(batch.status)) {
      console.error(view.render(batch, now, false));
      lastPrinted = now;
    }
    if (FINAL.has(batch.status) && tty) process.stderr.write("\n");
    return FINAL.has(batch.status);
  };
  try {
    try {
      const events = await api.batchEvents(id, stream.signal);
      for await (const batch of events ?? []) if (show(batch)) return batch;
    } catch (error) {
      // Interrupted, or the stream broke (a restart): polling takes over.
      if (error instanceof ClientError && error.exitCode !== EXIT.unreachable) throw error;
    }
    for (;;) {
      const batch = await api.retrieveBatch(id);
      if (show(batch)) return batch;
      if (interrupted) {
        interrupted = false;
        if (tty) process.stderr.write("\n");
        const cancel = process.stdin.isTTY && await ask(`Cancel batch ${id}? [y/N] `);
        if (cancel) {
          await api.cancelBatch(id);
          console.error("cancelling; waiting for it to end (Ctrl-C again leaves it)");
        } else {
          throw new ClientError(`left batch ${id} running; follow it with: batchspool status ${id}`, 130);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, tty ? 500 : 1_000));
    }
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

/**
 * Runs a client command; returns the exit code.
 *
 * @example
 * ```ts
 * process.exitCode = await runClientCommand("status", ["batch_…"]);
 * ```
 */
export async function runClientCommand(command: string, args: string[]): Promise<number> {
  try {
    switch (command) {
      case "submit": {
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: {
            ...COMMON,
            format: { type: "string" },
            endpoint: { type: "string" },
            window: { type: "string" },
            metadata: { type: "string", multiple: true },
            wait: { type: "boolean" },
            out: { type: "string" },
            errors: { type: "string" },
          },
        });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length !== 1) return usage(command, EXIT.usage, "give exactly one JSONL file");
        const metadata: Record<string, string> = {};
        for (const pair of values.metadata ?? []) {
          const at = pair.indexOf("=");
          if (at < 1) return usage(command, EXIT.usage, `--metadata wants key=value, got ${JSON.stringify(pair)}`);
          metadata[pair.slice(0, at)] = pair.slice(at + 1);
        }
        const api = clientFor(values);
        const format = values.format ?? ((await isMessageBatchFile(positionals[0])) ? "anthropic" : "openai");
        if (format === "anthropic") {
          if (values.endpoint || values.window || values.metadata?.length) {
            return usage(command, EXIT.usage, "--endpoint, --window and --metadata are not for Anthropic message batches");
          }
          return await submitMessageBatch(api, positionals[0], values.wait ?? false, values.out);
        }
        if (format !== "openai") return usage(command, EXIT.usage, `--format must be openai or anthropic, got ${JSON.stringify(format)}`);
        const file = await api.uploadFile(positionals[0], "batch");
        console.error(`uploaded ${positionals[0]} as ${file.id} (${file.bytes} bytes)`);
        let batch = await api.createBatch({
          input_file_id: file.id,
          endpoint: values.endpoint ?? "/v1/chat/completions",
          completion_window: values.window ?? "24h",
          ...(Object.keys(metadata).length ? { metadata } : {}),
        });
        console.log(batch.id);
        if (!values.wait) return EXIT.ok;
        batch = await waitForBatch(api, batch.id);
        console.error(summary(batch));
        await downloadResults(api, batch, values.out, values.errors);
        return batch.status === "completed" ? EXIT.ok : EXIT.batchNotCompleted;
      }
      case "status": {
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: { ...COMMON, json: { type: "boolean" } },
        });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length !== 1) return usage(command, EXIT.usage, "give one batch id");
        if (isMessageBatchId(positionals[0])) {
          const batch = await clientFor(values).retrieveMessageBatch(positionals[0]);
          console.log(values.json ? JSON.stringify(batch, null, 2) : messageBatchSummary(batch));
          return EXIT.ok;
        }
        const batch = await clientFor(values).retrieveBatch(positionals[0]);
        console.log(values.json ? JSON.stringify(batch, null, 2) : summary(batch));
        return EXIT.ok;
      }
      case "cancel": {
        const { values, positionals } = parseArgs({ args, allowPositionals: true, options: COMMON });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length !== 1) return usage(command, EXIT.usage, "give one batch id");
        const id = positionals[0];
        console.log(isMessageBatchId(id) ? messageBatchSummary(await clientFor(values).cancelMessageBatch(id)) : summary(await clientFor(values).cancelBatch(id)));
        return EXIT.ok;
      }
      case "pause":
      case "resume": {
        const { values, positionals } = parseArgs({ args, allowPositionals: true, options: COMMON });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length !== 1) return usage(command, EXIT.usage, "give one batch id");
        const api = clientFor(values);
        const batch = command === "pause" ? await api.pauseBatch(positionals[0]) : await api.resumeBatch(positionals[0]);
        console.log(summary(batch));
        return EXIT.ok;
      }
      case "list": {
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: { ...COMMON, limit: { type: "string" } },
        });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length) return usage(command, EXIT.usage, "list takes no arguments");
        const limit = values.limit === undefined ? 20 : Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
          return usage(command, EXIT.usage, "--limit must be an integer from 1 to 100");
        }
        const page = await clientFor(values).listBatches(limit);
        for (const batch of page.data) {
          const { total, completed, failed } = batch.request_counts;
          console.log(`${batch.id}  ${batch.status.padEnd(11)}  ${completed + failed}/${total}  ${batch.endpoint}`);
        }
        if (page.has_more) console.log(`… more; use --limit to see up to 100`);
        return EXIT.ok;
      }
      case "retry": {
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: { ...COMMON, wait: { type: "boolean" }, out: { type: "string" }, errors: { type: "string" } },
        });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length !== 1) return usage(command, EXIT.usage, "give one batch id");
        const retried = await retryBatch(configFor(values), positionals[0]);
        if (!retried.batch) {
          console.error(`batch ${positionals[0]} has no line without a successful result: nothing to retry`);
          return EXIT.ok;
        }
        const causes = Object.entries(retried.causes).map(([cause, n]) => `${n} ${cause}`).join(", ");
        console.error(`retrying ${retried.lines} line(s) of ${positionals[0]} without a successful result (${causes})`);
        console.log(retried.batch.id);
        if (!values.wait) return EXIT.ok;
        const api = clientFor(values);
        const batch = await waitForBatch(api, retried.batch.id);
        console.error(summary(batch));
        await downloadResults(api, batch, values.out, values.errors);
        return batch.status === "completed" ? EXIT.ok : EXIT.batchNotCompleted;
      }
      case "download": {
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: { ...COMMON, out: { type: "string" }, errors: { type: "string" }, follow: { type: "boolean" } },
        });
        if (values.help) return usage(command, EXIT.ok);
        if (positionals.length !== 1) return usage(command, EXIT.usage, "give one batch id");
        const api = clientFor(values);
        if (values.follow) return await followResults(api, positionals[0], values.out ?? `${positionals[0]}_results.jsonl`);
        const batch = await api.retrieveBatch(positionals[0]);
        if (!batch.output_file_id && !batch.error_file_id) {
          console.error(`batch ${batch.id} is ${batch.status} and has no result files yet`);
          return FINAL.has(batch.status) ? EXIT.ok : EXIT.batchNotCompleted;
        }
        await downloadResults(api, batch, values.out, values.errors);
        return EXIT.ok;
      }
    }
    return usage(command, EXIT.usage, `unknown command ${JSON.stringify(command)}`);
  } catch (error) {
    if (error instanceof ClientError) {
      console.error(`batchspool ${command}: ${error.message}`);
      return error.exitCode;
    }
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      return usage(command, EXIT.usage, (error as Error).message);
    }
    throw error;
  }
}

function usage(command: string, code: number, problem?: string): number {
  const text = CLIENT_USAGE[command] ?? "";
  if (problem) console.error(`batchspool ${command}: ${problem}\n\n${text}`);
  else console.log(text);
  return code;
}
