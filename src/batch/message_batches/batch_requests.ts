/**
 * The body of `POST /v1/messages/batches`, `{"requests": [{"custom_id",
 * "params"}, …]}`, read as it streams in and written out as the batch's
 * input: one `/v1/messages` request line per request, its `params` byte for
 * byte. Memory holds one request at a time, never the body. Each request is
 * checked as it arrives (its shape, its `custom_id`'s pattern and
 * uniqueness, no `stream`), and the first problem ends the stream with a
 * {@link BatchError} naming where it is (`requests.3.custom_id`).
 *
 * @module
 */
import { concatBytes } from "../../shared/concat_bytes.ts";
import { CustomIdSet } from "../input/custom_id_set.ts";
import { rawMemberValue } from "../input/raw_json.ts";
import { MAX_MESSAGE_BATCH_BYTES, MAX_MESSAGE_BATCH_REQUESTS } from "../model/batch_params.ts";
import { BatchError } from "../model/errors.ts";

/** Largest single request (the limit of an input line). */
const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
/** A `custom_id`, as Anthropic allows it. */
const CUSTOM_ID = /^[a-zA-Z0-9_-]{1,64}$/;
/** Request lines gathered before they are handed on (fewer, larger writes to storage). */
const OUTPUT_BYTES = 256 * 1024;

const invalid = (message: string, param: string) => new BatchError("invalid_request", `${param}: ${message}`, { param });

const BRACE_OPEN = 0x7b, BRACE_CLOSE = 0x7d, BRACKET_OPEN = 0x5b, BRACKET_CLOSE = 0x5d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a, COMMA = 0x2c;
const isSpace = (byte: number) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** Where the reader is in `{"requests": [ … ]}`. */
type Place = "start" | "key" | "colon" | "array" | "first" | "element" | "after_element" | "next" | "after_array" | "end";

/** What {@link messageBatchInput} found once its stream has ended. */
export interface MessageBatchInput {
  /** The request lines, to store as the batch's input. */
  lines: ReadableStream<Uint8Array>;
  /** How many requests there were, once the lines have all been read. */
  requests(): number;
}

/**
 * The request lines of a create body (of at most `maxBytes`).
 *
 * @example
 * ```ts
 * const input = messageBatchInput(request.body);
 * const received = await files.receive({ owner, filename: "requests.jsonl", purpose: "batch", content: input.lines });
 * input.requests(); // how many
 * ```
 */
export function messageBatchInput(body: AsyncIterable<Uint8Array>, maxBytes: number = MAX_MESSAGE_BATCH_BYTES): MessageBatchInput {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const ids = new CustomIdSet();
  let place: Place = "start";
  let count = 0;
  let total = 0;
  /** The key being read (a few bytes: only `requests` is allowed). */
  let key: number[] = [];
  let keyEscaped = false;
  let seenRequests = false;
  /** The request being read: its parts, size, depth and whether the reader is in one of its strings. */
  let parts: Uint8Array[] = [];
  let size = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let out = "";

  const requestLine = (bytes: Uint8Array): string => {
    const at = `requests.${count}`;
    let text: string;
    let value: unknown;
    try {
      text = decoder.decode(bytes);
      value = JSON.parse(text);
    } catch {
      throw invalid("is not valid JSON", at);
    }
    const request = value as Record<string, unknown>;
    for (const name of Object.keys(request)) {
      if (name !== "custom_id" && name !== "params") throw invalid("extra inputs are not permitted", `${at}.${name}`);
    }
    const customId = request.custom_id;
    if (typeof customId !== "string" || !CUSTOM_ID.test(customId)) {
      throw invalid("must be 1 to 64 letters, digits, underscores or hyphens (^[a-zA-Z0-9_-]{1,64}$)", `${at}.custom_id`);
    }
    if (!ids.add(customId)) throw invalid(`duplicate custom_id ${JSON.stringify(customId)}: each must be unique in a batch`, `${at}.custom_id`);
    const params = request.params;
    if (typeof params !== "object" || params === null || Array.isArray(params)) throw invalid("must be an object", `${at}.params`);
    if ((params as Record<string, unknown>).stream === true) throw invalid("streaming is not available in a batch", `${at}.params.stream`);
    // Byte for byte as sent (numbers beyond 2^53, spacing), on one line: a newline can only be space between tokens.
    const raw = rawMemberValue(text, "params")!.replace(/[\r\n]/g, " ");
    return `{"custom_id":${JSON.stringify(customId)},"method":"POST","url":"/v1/messages","body":${raw}}\n`;
  };

  const unexpected = (byte: number, where: string) =>
    invalid(`unexpected ${JSON.stringify(String.fromCharCode(byte))} ${where}`, "requests");

  /** Reads one chunk of the body; returns the request lines it completed. */
  const read = (chunk: Uint8Array): void => {
    total += chunk.length;
    if (total > maxBytes) throw new BatchError("too_large", `The request body is larger than ${maxBytes} bytes.`, { param: "requests" });
    let elementStart = place === "element" ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      switch (place) {
        case "element":
          if (inString) {
            if (escaped) escaped = false;
            else if (byte === BACKSLASH) escaped = true;
            else if (byte === QUOTE) inString = false;
          } else if (byte === QUOTE) inString = true;
          else if (byte === BRACE_OPEN || byte === BRACKET_OPEN) depth++;
          else if (byte === BRACE_CLOSE || byte === BRACKET_CLOSE) {
            if (--depth === 0) {
              const piece = chunk.subarray(elementStart, i + 1);
              parts.push(piece);
              size += piece.length;
              out += requestLine(parts.length === 1 ? parts[0] : concatBytes(parts, size));
              count++;
              parts = [];
              size = 0;
              elementStart = -1;
              place = "after_element";
            }
          }
          break;
        case "start":
          if (isSpace(byte)) break;
          if (byte !== BRACE_OPEN) throw invalid("the body must be a JSON object", "body");
          place = "key";
          break;
        case "key":
          if (key.length === 0 && !keyEscaped) {
            if (isSpace(byte)) break;
            if (byte === BRACE_CLOSE) {
              if (!seenRequests) throw invalid("field required", "requests");
              place = "end";
              break;
            }
            if (byte !== QUOTE) throw unexpected(byte, "where a field name belongs");
            key.push(byte);
            break;
          }
          if (keyEscaped) keyEscaped = false;
          else if (byte === BACKSLASH) keyEscaped = true;
          else if (byte === QUOTE) {
            const name = JSON.parse(new TextDecoder().decode(new Uint8Array([...key, byte]))) as string;
            if (name !== "requests") throw invalid("extra inputs are not permitted", name);
            if (seenRequests) throw invalid("given twice", "requests");
            seenRequests = true;
            key = [];
            place = "colon";
            break;
          }
          key.push(byte);
          if (key.length > 1024) throw invalid("a field name this long is not one of this request's", "body");
          break;
        case "colon":
          if (isSpace(byte)) break;
          if (byte !== COLON) throw unexpected(byte, "after a field name");
          place = "array";
          break;
        case "array":
          if (isSpace(byte)) break;
          if (byte !== BRACKET_OPEN) throw invalid("must be an array of requests", "requests");
          place = "first";
          break;
        case "first":
          if (isSpace(byte)) break;
          if (byte === BRACKET_CLOSE) throw invalid("must contain at least one request", "requests");
          place = "next";
        // falls through: the first request starts here
        case "next":
          if (isSpace(byte)) break;
          if (byte !== BRACE_OPEN) throw invalid("must be an object", `requests.${count}`);
          if (count === MAX_MESSAGE_BATCH_REQUESTS) throw invalid(`may hold at most ${MAX_MESSAGE_BATCH_REQUESTS} requests`, "requests");
          place = "element";
          depth = 1;
          inString = false;
          escaped = false;
          elementStart = i;
          break;
        case "after_element":
          if (isSpace(byte)) break;
          if (byte === COMMA) place = "next";
          else if (byte === BRACKET_CLOSE) place = "after_array";
          else throw unexpected(byte, `after requests.${count - 1}`);
          break;
        case "after_array":
          if (isSpace(byte)) break;
          if (byte === COMMA) place = "key";
          else if (byte === BRACE_CLOSE) place = "end";
          else throw unexpected(byte, "after the requests");
          break;
        case "end":
          if (!isSpace(byte)) throw unexpected(byte, "after the body's end");
          break;
      }
    }
    if (place === "element") {
      const piece = chunk.subarray(elementStart);
      // The chunk may be reused by its source: keep a copy.
      parts.push(piece.slice());
      size += piece.length;
      if (size > MAX_REQUEST_BYTES) throw invalid(`is larger than ${MAX_REQUEST_BYTES} bytes`, `requests.${count}`);
    }
  };

  const iterator = body[Symbol.asyncIterator]();
  const lines = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (out.length < OUTPUT_BYTES) {
          const next = await iterator.next();
          if (next.done) {
            if (place !== "end") throw invalid(place === "start" ? "the body is empty" : "the body ends before its JSON does", "body");
            if (out) controller.enqueue(encoder.encode(out));
            out = "";
            controller.close();
            return;
          }
          read(next.value);
        }
        controller.enqueue(encoder.encode(out));
        out = "";
      } catch (error) {
        await iterator.return?.();
        controller.error(error);
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  }, { highWaterMark: 0 });
  return { lines, requests: () => count };
}
