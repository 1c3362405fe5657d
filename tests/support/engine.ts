/** Helpers to drive a batch engine directly. */
import type { BatchEngine } from "../../src/engine/engine.ts";
import type { BatchObject } from "../../src/batch/model/objects.ts";
import type { Storage } from "../../src/storage/types.ts";
import type { ManualClock } from "./clock.ts";

export const OWNER = "default";

export function line(customId: string, model: string, extra: Record<string, unknown> = {}, url = "/v1/chat/completions"): string {
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url,
    body: { model, messages: [{ role: "user", content: customId }], ...extra },
  });
}

/** Uploads `lines` as a batch input file of `owner` ({@link OWNER} by default); returns its id. */
export async function uploadInput(engine: BatchEngine, lines: string[], owner = OWNER): Promise<string> {
  const received = await engine.files.receive({
    owner,
    filename: "in.jsonl",
    purpose: "batch",
    content: new TextEncoder().encode(lines.join("\n") + "\n"),
  });
  return (await engine.files.commit(received, { purpose: "batch" })).id;
}

export async function submit(
  engine: BatchEngine,
  lines: string[],
  options: { endpoint?: string; window?: string } = {},
): Promise<BatchObject> {
  return await engine.createBatch(OWNER, {
    input_file_id: await uploadInput(engine, lines),
    endpoint: options.endpoint ?? "/v1/chat/completions",
    completion_window: options.window ?? "24h",
  });
}

export async function waitUntil(
  engine: BatchEngine,
  id: string,
  predicate: (batch: BatchObject) => boolean,
  timeoutMs = 60_000,
): Promise<BatchObject> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const batch = await engine.getBatch(OWNER, id);
    if (predicate(batch)) return batch;
    if (Date.now() > deadline) throw new Error(`batch ${id} is ${batch.status}: ${JSON.stringify(batch.request_counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Like {@link waitUntil}, for an engine on a manual clock: moves the clock on
 * `stepMs` at a time (letting real I/O finish between steps) until the batch
 * satisfies `predicate`; resolves with the batch and the clock time it took.
 */
export async function driveUntil(
  engine: BatchEngine,
  clock: ManualClock,
  id: string,
  predicate: (batch: BatchObject) => boolean,
  { stepMs = 10, maxMs = 120_000 } = {},
): Promise<{ batch: BatchObject; tookMs: number }> {
  const started = clock.monotonic();
  for (;;) {
    const batch = await engine.getBatch(OWNER, id);
    if (predicate(batch)) return { batch, tookMs: clock.monotonic() - started };
    if (clock.monotonic() - started > maxMs) throw new Error(`batch ${id} is ${batch.status}: ${JSON.stringify(batch.request_counts)}`);
    await clock.advance(stepMs);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

export const ended = (batch: BatchObject): boolean =>
  ["completed", "failed", "expired", "cancelled"].includes(batch.status);

/** Result records of a result file, parsed. */
export async function records(engine: BatchEngine, fileId: string | null): Promise<Record<string, unknown>[]> {
  if (!fileId) return [];
  const { stream } = await engine.files.content(OWNER, fileId);
  const text = await new Response(stream).text();
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** Asserts-free helper: every custom_id across both files, sorted. */
export async function allCustomIds(engine: BatchEngine, batch: BatchObject): Promise<string[]> {
  const out = await records(engine, batch.output_file_id);
  const err = await records(engine, batch.error_file_id);
  return [...out, ...err].map((r) => r.custom_id as string).sort();
}

export type { Storage };
