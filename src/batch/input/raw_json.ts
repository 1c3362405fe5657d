/**
 * Finding the exact text of a member's value inside a JSON object's text.
 *
 * A request line's `body` is sent upstream as the user wrote it, not parsed
 * and serialised again: serialising would round integers beyond 2^53 (a
 * `seed`, say), turn `1.0` into `1`, and cost as much time as parsing did.
 *
 * @module
 */

const QUOTE = 34;
const BACKSLASH = 92;

/**
 * The text of the value of `name` at the top level of the JSON object `json`
 * (the last one, as `JSON.parse` keeps the last of repeated names), or
 * undefined when there is none. `json` must be valid JSON (a validated line);
 * the text is a slice of it, byte for byte.
 *
 * @example
 * ```ts
 * rawMemberValue('{"custom_id":"a","body":{"seed":12345678901234567890}}', "body");
 * // '{"seed":12345678901234567890}'
 * ```
 */
export function rawMemberValue(json: string, name: string): string | undefined {
  let at = skipSpace(json, 0);
  if (json[at] !== "{") return undefined;
  at = skipSpace(json, at + 1);
  let found: string | undefined;
  while (at < json.length && json[at] !== "}") {
    const keyEnd = endOfString(json, at);
    const rawKey = json.slice(at, keyEnd);
    const key = rawKey.includes("\\") ? JSON.parse(rawKey) as string : rawKey.slice(1, -1);
    const valueStart = skipSpace(json, skipSpace(json, keyEnd) + 1);
    const valueEnd = endOfValue(json, valueStart);
    if (key === name) found = json.slice(valueStart, valueEnd);
    at = skipSpace(json, valueEnd);
    if (json[at] === ",") at = skipSpace(json, at + 1);
  }
  return found;
}

function skipSpace(json: string, from: number): number {
  let at = from;
  for (let c = json.charCodeAt(at); c === 32 || c === 9 || c === 10 || c === 13; c = json.charCodeAt(++at));
  return at;
}

/** Index just after the string that starts (with its quote) at `start`. */
function endOfString(json: string, start: number): number {
  for (let from = start + 1;;) {
    const quote = json.indexOf('"', from);
    if (quote < 0) return json.length;
    let backslashes = 0;
    while (json.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** Index just after the value that starts at `start`. */
function endOfValue(json: string, start: number): number {
  const first = json.charCodeAt(start);
  if (first === QUOTE) return endOfString(json, start);
  if (first === 123 || first === 91) {
    let depth = 0;
    for (let at = start; at < json.length;) {
      const c = json.charCodeAt(at);
      if (c === QUOTE) {
        at = endOfString(json, at);
        continue;
      }
      if (c === 123 || c === 91) depth++;
      else if ((c === 125 || c === 93) && --depth === 0) return at + 1;
      at++;
    }
    return json.length;
  }
  // A number, true, false or null: up to the next separator.
  let at = start;
  for (let c = json.charCodeAt(at); at < json.length && c !== 44 && c !== 125 && c !== 93 && c !== 32 && c !== 9 && c !== 10 && c !== 13; c = json.charCodeAt(++at));
  return at;
}
