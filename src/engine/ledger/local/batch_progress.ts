/**
 * A running batch's progress: which input lines are finished (a bitset, one bit
 * a line), the counts, the usage, and how far into each log that knowledge
 * reaches. This is all recovery keeps in memory — never the results.
 *
 * @module
 */
import { lineOfRecord } from "../../../batch/model/ids.ts";
import { readLines } from "../../../batch/input/line_splitter.ts";
import { type BatchUsage, copyUsage, emptyUsage } from "../../../batch/model/objects.ts";
import { addUsage } from "../../../batch/model/usage.ts";
import type { ResultKind } from "../../lines/results.ts";

/** Which log a record belongs to. */
export type LogKind = ResultKind;

/** A serialisable copy of {@link BatchProgress}, as checkpoints store it. */
export interface ProgressSnapshot {
  lines: number;
  /** Base64 of the finished-lines bitset. */
  done: string;
  completed: number;
  failed: number;
  usage: BatchUsage;
  outputLength: number;
  errorLength: number;
}

/** What a log scan found that it could not use. */
export interface ScanReport {
  records: number;
  /** Records with no readable line number. */
  unreadable: number;
  /** Records for a line already finished (never written by batchspool; counted once). */
  duplicates: number;
}

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Progress of one batch. */
export class BatchProgress {
  /** Physical input lines covered by the bitset. */
  readonly lines: number;
  completed = 0;
  failed = 0;
  usage: BatchUsage = emptyUsage();
  /** Bytes of the output log reflected here. */
  outputLength = 0;
  /** Bytes of the error log reflected here. */
  errorLength = 0;
  #done: Uint8Array;

  constructor(lines: number) {
    this.lines = lines;
    this.#done = new Uint8Array(Math.ceil((lines + 1) / 8));
  }

  /** Rebuilds progress from a snapshot. */
  static fromSnapshot(snapshot: ProgressSnapshot): BatchProgress {
    const progress = new BatchProgress(snapshot.lines);
    const done = fromBase64(snapshot.done);
    if (done.length !== progress.#done.length) throw new RangeError("progress snapshot does not fit its line count");
    progress.#done = done;
    progress.completed = snapshot.completed;
    progress.failed = snapshot.failed;
    progress.usage = copyUsage(snapshot.usage);
    progress.outputLength = snapshot.outputLength;
    progress.errorLength = snapshot.errorLength;
    return progress;
  }

  /** Whether input line `line` (1-based) has its result written. */
  isDone(line: number): boolean {
    return (this.#done[line >> 3] & (1 << (line & 7))) !== 0;
  }

  /** Lines finished so far. */
  get finished(): number {
    return this.completed + this.failed;
  }

  /**
   * Records that a result for `line` is durable in `kind`'s log, which now
   * reaches at least `logEnd` bytes. Returns false (changing nothing) when the
   * line was already finished.
   */
  record(line: number, kind: LogKind, usage: unknown, logEnd: number): boolean {
    if (line < 1 || line > this.lines || this.isDone(line)) return false;
    this.#done[line >> 3] |= 1 << (line & 7);
    if (kind === "output") {
      this.completed++;
      this.outputLength = Math.max(this.outputLength, logEnd);
    } else {
      this.failed++;
      this.errorLength = Math.max(this.errorLength, logEnd);
    }
    addUsage(this.usage, usage);
    return true;
  }

  /** A serialisable copy. */
  snapshot(): ProgressSnapshot {
    return {
      lines: this.lines,
      done: toBase64(this.#done),
      completed: this.completed,
      failed: this.failed,
      usage: copyUsage(this.usage),
      outputLength: this.outputLength,
      errorLength: this.errorLength,
    };
  }

  /**
   * Reads a log from `fromOffset` (where this progress's knowledge ends) and
   * marks every record's line finished. Used by recovery.
   */
  async absorbLog(kind: LogKind, log: ReadableStream<Uint8Array>, fromOffset: number): Promise<ScanReport> {
    const report: ScanReport = { records: 0, unreadable: 0, duplicates: 0 };
    const encoder = new TextEncoder();
    let offset = fromOffset;
    for await (const group of readLines(log, Number.MAX_SAFE_INTEGER)) {
      for (const { text } of group) {
        if (text === null) continue;
        offset += encoder.encode(text).length + 1;
        report.records++;
        const line = lineOfRecord(text);
        if (line === undefined) {
          report.unreadable++;
          continue;
        }
        if (this.isDone(line)) {
          report.duplicates++;
          continue;
        }
        let usage: unknown;
        try {
          usage = (JSON.parse(text) as { response?: { body?: { usage?: unknown } } }).response?.body?.usage;
        } catch {
          report.unreadable++;
          continue;
        }
        this.record(line, kind, usage, offset);
      }
    }
    if (kind === "output") this.outputLength = Math.max(this.outputLength, offset);
    else this.errorLength = Math.max(this.errorLength, offset);
    return report;
  }
}
