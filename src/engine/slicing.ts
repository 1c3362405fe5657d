/**
 * A batch's input cut into slices of whole lines, the unit of work nodes
 * claim, and the lines of a slice to run.
 *
 * A PostgreSQL ledger's slices are at most `maxLines` lines or about
 * `maxBytes` bytes each, with each slice's byte range and SHA-256, so a node
 * reads only its slice and checks it before sending any of its lines. A local
 * ledger's batch is one slice, its whole input, checked stretch by stretch
 * against the digest marks of its upload as it is read (no read before it
 * starts).
 *
 * @module
 */
import { verifiedStream } from "../integrity/digest_marks.ts";
import { createSha256, type Sha256 } from "../integrity/sha256.ts";
import { concatBytes } from "../shared/concat_bytes.ts";
import type { Storage } from "../storage/types.ts";
import { isBlankLine, readLines } from "../batch/input/line_splitter.ts";
import type { RequestLine } from "../batch/input/validation.ts";
import type { BatchRecord } from "../batch/model/objects.ts";
import { fileBlobKey } from "../batch/model/storage_keys.ts";
import type { LineToRun } from "./lines/line_runner.ts";
import type { SliceSpec } from "./ledger/ledger.ts";
import { EngineError } from "./engine_error.ts";

/** How large slices are. */
export interface SliceLimits {
  /** Most physical lines in a slice near the input's end (slices before may grow to {@link GROWTH} times it). */
  maxLines: number;
  /** A slice ends at the first line end at or past this many bytes (a slice is read whole into memory). */
  maxBytes: number;
}

/**
 * Slices are guided (as in guided self-scheduling): each is about a quarter
 * of a node's share of the lines left, at most `GROWTH` times `maxLines` and
 * twice `maxBytes`, and never less than `maxLines`. Early slices are large,
 * so a batch costs few claims and commits; the last ones are small, so the
 * nodes finish together.
 */
export const GROWTH = 8;

/** The most lines of the next slice, with `linesLeft` of the input left for `nodes` nodes. */
export function guidedSliceLines(limits: SliceLimits, linesLeft: number, nodes: number): number {
  const share = Math.ceil(linesLeft / (4 * Math.max(1, nodes)));
  return Math.max(limits.maxLines, Math.min(limits.maxLines * GROWTH, share));
}

/**
 * A few hundred lines: several slices even in a modest batch, so every node
 * gets work, and few rows per batch. Half a MiB at most: a node reads each of
 * its slices whole.
 */
export const DEFAULT_SLICE_LIMITS: SliceLimits = { maxLines: 256, maxBytes: 512 * 1024 };

/**
 * The slices of a batch's input, as they are cut: the whole input when
 * `limits` is null, else the input cut (and checked against its upload's
 * digest as it is read) from where the slices added so far end (`from`).
 */
export async function* slicesOf(
  storage: Storage,
  record: BatchRecord,
  limits: SliceLimits | null,
  nodes = 1,
  from: { lines: number; bytes: number } = { lines: 0, bytes: 0 },
): AsyncGenerator<SliceSpec> {
  if (!limits) {
    yield { firstLine: 1, lineCount: record.input_lines, byteStart: 0, byteEnd: record.input_digest.bytes, sha256: null };
    return;
  }
  yield* sliceInput(await inputOf(storage, record), limits, { lines: record.input_lines, nodes }, from);
}

/** A batch's input, each stretch checked against its upload's digest marks before it is given out. */
export async function inputOf(storage: Storage, record: BatchRecord): Promise<ReadableStream<Uint8Array>> {
  return verifiedStream(await storage.blobs.get(fileBlobKey(record.batch.input_file_id)), record.input_digest);
}

/** Cuts an input (already checked against its digest) into slices of `limits`, all at once. */
export async function cutSlices(
  input: ReadableStream<Uint8Array>,
  limits: SliceLimits = DEFAULT_SLICE_LIMITS,
  guide?: { lines: number; nodes: number },
): Promise<SliceSpec[]> {
  const slices: SliceSpec[] = [];
  for await (const slice of sliceInput(input, limits, guide)) slices.push(slice);
  return slices;
}

/**
 * Cuts an input (already checked against its digest) into slices as it is
 * read: of `limits` each, or guided by its number of lines and the nodes
 * that will share it when `guide` says them; the bytes and lines before
 * `from` (slices cut before) are skipped.
 */
export async function* sliceInput(
  input: ReadableStream<Uint8Array>,
  limits: SliceLimits,
  guide?: { lines: number; nodes: number },
  from: { lines: number; bytes: number } = { lines: 0, bytes: 0 },
): AsyncGenerator<SliceSpec> {
  const maxBytes = guide ? limits.maxBytes * 2 : limits.maxBytes;
  let hash: Sha256 = createSha256();
  let offset = 0;
  let sliceStart = from.bytes;
  let firstLine = from.lines + 1;
  let lines = 0;
  /** Whether bytes follow the last line end (a last line without a newline). */
  let open = false;
  const nextMaxLines = () => guide ? guidedSliceLines(limits, guide.lines - (firstLine - 1), guide.nodes) : limits.maxLines;
  let maxLines = nextMaxLines();
  const cut = (end: number): SliceSpec => {
    const slice = { firstLine, lineCount: lines, byteStart: sliceStart, byteEnd: end, sha256: hash.hexDigest() };
    hash = createSha256();
    sliceStart = end;
    firstLine += lines;
    lines = 0;
    maxLines = nextMaxLines();
    return slice;
  };
  for await (let chunk of input) {
    if (offset + chunk.length <= from.bytes) {
      offset += chunk.length;
      continue;
    }
    if (offset < from.bytes) {
      chunk = chunk.subarray(from.bytes - offset);
      offset = from.bytes;
    }
    let start = 0;
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) {
      lines++;
      const end = offset + at + 1;
      if (lines >= maxLines || end - sliceStart >= maxBytes) {
        hash.update(chunk.subarray(start, at + 1));
        start = at + 1;
        yield cut(end);
      }
    }
    if (start < chunk.length) hash.update(chunk.subarray(start));
    offset += chunk.length;
    open = offset > sliceStart && chunk.length > 0 && chunk[chunk.length - 1] !== 10;
  }
  if (open) lines++;
  if (offset > sliceStart) yield cut(offset);
}

/** How much of a slice's bytes is split into lines at a time: its lines are parsed as they are sent, not all at once. */
const SPLIT_BYTES = 64 * 1024;

/**
 * A slice's lines, numbered as in the whole input, a group at a time, from
 * its bytes (checked against the slice's SHA-256 before any line is given out).
 *
 * @throws {ClusterError} `input_changed` when the bytes are not the slice's
 */
export async function* sliceLines(
  bytes: Uint8Array,
  slice: Pick<SliceSpec, "firstLine"> & { sha256: string },
): AsyncGenerator<{ line: number; text: string | null }[]> {
  const actual = createSha256().update(bytes).hexDigest();
  if (actual !== slice.sha256) {
    throw new EngineError("input_changed", `a slice of the input has SHA-256 ${actual}, not ${slice.sha256} as cut`);
  }
  let at = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.subarray(at, at + SPLIT_BYTES));
      at += SPLIT_BYTES;
    },
  }, { highWaterMark: 0 });
  for await (const group of readLines(source)) {
    yield group.map(({ line, text }) => ({ line: line + slice.firstLine - 1, text }));
  }
}

/**
 * The request lines of a slice that have no result yet (`isFinished`), parsed
 * a group at a time: a whole-input slice streamed, a cut slice read whole (it
 * is small) and checked against its SHA-256.
 */
export async function* linesToRun(
  storage: Storage,
  record: BatchRecord,
  slice: SliceSpec,
  isFinished: (line: number) => boolean,
): AsyncGenerator<LineToRun[]> {
  let groups: AsyncIterable<{ line: number; text: string | null }[]>;
  if (slice.sha256 === null) {
    groups = readLines(await inputOf(storage, record));
  } else {
    const chunks: Uint8Array[] = [];
    let total = 0;
    const range = { start: slice.byteStart, end: slice.byteEnd };
    for await (const chunk of await storage.blobs.get(fileBlobKey(record.batch.input_file_id), range)) {
      chunks.push(chunk);
      total += chunk.length;
    }
    groups = sliceLines(concatBytes(chunks, total), { firstLine: slice.firstLine, sha256: slice.sha256 });
  }
  for await (const group of groups) {
    const lines: LineToRun[] = [];
    for (const { line, text } of group) {
      if (text === null || isFinished(line) || isBlankLine(text)) continue;
      lines.push({ line, text, request: JSON.parse(text) as RequestLine });
    }
    if (lines.length) yield lines;
  }
}
