/**
 * Benchmark 11 — hash flooding: a batch input whose 32,768 custom_ids all
 * share one FNV-1a hash (the unkeyed hash the id set used before), validated
 * beside one with random ids of the same lengths, in process (the scanner an
 * upload and a batch's creation run), paired runs, median ratio.
 * Bar: flood ÷ random ≤ 1.5 (ids that collide cost what any ids cost).
 */
import { DEFAULT_VALIDATION_LIMITS, InputScanner } from "../src/batch/input/validation.ts";
import { fnvMulticollisions, randomIdsLike } from "../tests/support/fnv_multicollisions.ts";
import { median, report, runsArg } from "./_lib.ts";

const runs = runsArg(5);
const flood = fnvMulticollisions(15);
const random = randomIdsLike(flood);

const input = (ids: readonly string[]) =>
  new TextEncoder().encode(
    ids.map((id) =>
      JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: "hi" }] } })
    ).join("\n"),
  );

/** Seconds to scan the input, pushed in 64 KB chunks as an upload arrives. */
function scanSeconds(bytes: Uint8Array): number {
  const started = performance.now();
  const scanner = new InputScanner(DEFAULT_VALIDATION_LIMITS);
  for (let at = 0; at < bytes.length; at += 65_536) scanner.push(bytes.subarray(at, at + 65_536));
  const scan = scanner.finish();
  if (scan.errors.length) throw new Error(`unexpected errors: ${JSON.stringify(scan.errors.slice(0, 3))}`);
  return (performance.now() - started) / 1000;
}

const floodInput = input(flood);
const randomInput = input(random);
scanSeconds(randomInput); // warm up
const ratios: number[] = [], floods: number[] = [], randoms: number[] = [];
for (let i = 0; i < runs; i++) {
  const f = scanSeconds(floodInput);
  const r = scanSeconds(randomInput);
  floods.push(f), randoms.push(r), ratios.push(f / r);
}
const ratio = median(ratios);
report("hash_flooding", {
  ids: flood.length,
  id_length: flood[0].length,
  flood_ms: Math.round(median(floods) * 1000),
  random_ms: Math.round(median(randoms) * 1000),
  ratio: Math.round(ratio * 100) / 100,
  bar: "flood ÷ random ≤ 1.5",
  pass: ratio <= 1.5,
  runs: { ratios: ratios.map((r) => Math.round(r * 100) / 100) },
});
