/**
 * Prefix grouping: model servers with a prefix cache (vLLM, SGLang) answer a
 * request faster when its leading messages (system prompt, few-shot turns)
 * were computed recently. Lines that share them may lie far apart in an
 * input, so within a window of lines they are sent as groups: each group's
 * first line (its leader) goes a few groups (about two concurrencies' worth
 * of lines) ahead of the rest, so that by the time the others go its prefix
 * has been computed, and the server need keep only those few prefixes at once. Results do not
 * depend on the order lines are sent in (each is recorded by its line).
 *
 * @module
 */
import type { LineToRun } from "./line_runner.ts";

/** Most lines reordered at once. */
const WINDOW_LINES = 1024;
/** Most bytes of lines held for reordering at once. */
const WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * What a line's request shares with others, as a key: its model and the
 * messages before its last one (with the system prompt or instructions), or
 * null when it has no such part.
 */
export function prefixKeyOf(line: LineToRun): string | null {
  const body = line.request.body as Record<string, unknown>;
  const messages = body.messages;
  const system = body.system ?? body.instructions;
  let leading: unknown[] = [];
  if (Array.isArray(messages)) leading = messages.slice(0, -1);
  else if (Array.isArray(body.input)) leading = body.input.slice(0, -1);
  if (leading.length === 0 && system === undefined) return null;
  return JSON.stringify([line.request.url, body.model, system ?? null, leading]);
}

/**
 * The same lines, reordered window by window: groups by prefix in the order
 * their first line appears, each group's leader about `leadLines` lines
 * before the group's other lines; lines without a prefix keep their places
 * among the groups.
 */
export async function* groupByPrefix(lines: AsyncIterable<LineToRun[]>, leadLines: number): AsyncGenerator<LineToRun[]> {
  let window: LineToRun[] = [];
  let bytes = 0;
  try {
    for await (const group of lines) {
      for (const line of group) {
        window.push(line);
        bytes += line.text.length;
        if (window.length >= WINDOW_LINES || bytes >= WINDOW_BYTES) {
          yield reorder(window, leadLines);
          window = [];
          bytes = 0;
        }
      }
    }
  } catch (error) {
    // The input failed its check further on: the lines read before it were verified, and run.
    if (window.length) yield reorder(window, leadLines);
    throw error;
  }
  if (window.length) yield reorder(window, leadLines);
}

/** One window in sending order (see {@link groupByPrefix}). */
export function reorder(window: readonly LineToRun[], leadLines: number): LineToRun[] {
  const groups = new Map<string, LineToRun[]>();
  const units: LineToRun[][] = [];
  for (const line of window) {
    const key = prefixKeyOf(line);
    const known = key === null ? undefined : groups.get(key);
    if (known) known.push(line);
    else {
      const unit = [line];
      if (key !== null) groups.set(key, unit);
      units.push(unit);
    }
  }
  if (groups.size === 0 || groups.size === window.length) return [...window];
  // Leaders run `lag` groups ahead of their followers: about `leadLines` lines apart, while
  // only `lag` + 1 prefixes are new to the server at once (its cache need hold no more).
  const lag = Math.max(1, Math.ceil(leadLines / (window.length / units.length)));
  const ordered: LineToRun[] = [];
  for (let i = 0; i < units.length + lag; i++) {
    if (i < units.length) ordered.push(units[i][0]);
    const due = units[i - lag];
    if (due) for (let j = 1; j < due.length; j++) ordered.push(due[j]);
  }
  return ordered;
}
