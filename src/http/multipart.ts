/**
 * A streaming `multipart/form-data` parser.
 *
 * Written here rather than taken from a library because the Web-stream parsers
 * available (`@remix-run/multipart-parser` and its forks) buffer each part's
 * content in memory, and an upload may be hundreds of megabytes. Here a file
 * part's content is a `ReadableStream` read straight from the request body
 * (any async iterable of bytes: a `ReadableStream`, or Node's request itself).
 *
 * @module
 */
import { concatBytes } from "../shared/concat_bytes.ts";
import { bytesFinder, indexOfByte } from "../runtime/find_byte.ts";
import { RequestError } from "./request_error.ts";

/** One part of a form. Its `body` must be read to the end (or cancelled) before the next part. */
export interface FormPart {
  name: string;
  filename: string | null;
  contentType: string | null;
  body: ReadableStream<Uint8Array>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CR = 13;
const MAX_HEADER_BYTES = 16 * 1024;
/** Most parts a form may have: an upload has a handful, and each part costs a little memory and work. */
const DEFAULT_MAX_PARTS = 64;
const findHeaderEnd = bytesFinder(encoder.encode("\r\n\r\n"));

/** The boundary from a `Content-Type: multipart/form-data; boundary=…` header, or null. */
export function multipartBoundary(contentType: string | null): string | null {
  if (!contentType || !/^multipart\/form-data\s*(;|$)/i.test(contentType.trim())) return null;
  const match = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  return boundary && boundary.length <= 200 ? boundary : null;
}

const malformed = (detail: string) =>
  new RequestError("invalid_request", `The multipart/form-data body is malformed: ${detail}.`);

/**
 * Parses a multipart body part by part, at most `maxParts` of them (default 64).
 *
 * @throws {RequestError} `invalid_request` when the body is malformed or has too many parts.
 * @example
 * ```ts
 * for await (const part of parseMultipart(request.body!, boundary)) {
 *   if (part.filename) await storage.blobs.put("files/x", part.body);
 *   else console.log(part.name, await new Response(part.body).text());
 * }
 * ```
 */
export async function* parseMultipart(
  body: AsyncIterable<Uint8Array>,
  boundary: string,
  options: { maxParts?: number } = {},
): AsyncGenerator<FormPart> {
  const maxParts = options.maxParts ?? DEFAULT_MAX_PARTS;
  let parts = 0;
  const chunks = body[Symbol.asyncIterator]();
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  const findDelimiter = bytesFinder(delimiter);
  // The first delimiter may come without its leading CRLF.
  const firstDelimiter = delimiter.subarray(2);
  const findFirstDelimiter = bytesFinder(firstDelimiter);
  let buffer: Uint8Array = new Uint8Array(0);
  let position = 0;
  let ended = false;

  const fill = async (): Promise<boolean> => {
    if (ended) return false;
    const { done, value } = await chunks.next();
    if (done) {
      ended = true;
      return false;
    }
    // Arrays handed out are views of `buffer`: it is replaced, never written to.
    buffer = position === buffer.length
      ? value
      : concatBytes([buffer.subarray(position), value], buffer.length - position + value.length);
    position = 0;
    return true;
  };
  /** Ensures at least `n` unread bytes; false at the end of the body. */
  const need = async (n: number) => {
    while (buffer.length - position < n) if (!(await fill())) return false;
    return true;
  };

  try {
    for (;;) {
      const at = findFirstDelimiter(buffer, position);
      if (at >= 0) {
        position = at + firstDelimiter.length;
        break;
      }
      position = Math.max(position, buffer.length - firstDelimiter.length);
      if (!(await fill())) throw malformed("no boundary found");
    }
    for (;;) {
      if (!(await need(2))) throw malformed("the body ends after a boundary");
      if (buffer[position] === 45 && buffer[position + 1] === 45) return; // "--": the closing delimiter
      // Skip transport padding and the CRLF after the boundary.
      for (;;) {
        const crlf = buffer.indexOf(CR, position);
        if (crlf >= 0 && (await need(crlf - position + 2))) {
          position = crlf + 2;
          break;
        }
        if (buffer.length - position > 1024 || !(await fill())) throw malformed("bad boundary line");
      }
      let end: number;
      for (;;) {
        end = findHeaderEnd(buffer, position);
        if (end >= 0) break;
        if (buffer.length - position > MAX_HEADER_BYTES) throw malformed("part headers are too long");
        if (!(await fill())) throw malformed("the body ends inside part headers");
      }
      const headers = decoder.decode(buffer.subarray(position, end + 2));
      position = end + 4;
      if (++parts > maxParts) {
        throw new RequestError("invalid_request", `The form has more than ${maxParts} fields.`);
      }
      const part = describePart(headers);

      let partDone = false;
      let cancelled = false;
      const content = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            for (;;) {
              const at = findDelimiter(buffer, position);
              if (at >= 0) {
                if (at > position && !cancelled) controller.enqueue(buffer.subarray(position, at));
                position = at + delimiter.length;
                partDone = true;
                controller.close();
                return;
              }
              // Everything before a possible delimiter prefix at the end (it starts with CR) can go out now;
              // usually that is the whole buffer, and the next chunk is then taken without a copy.
              const tail = indexOfByte(buffer, CR, Math.max(position, buffer.length - (delimiter.length - 1)));
              const safeEnd = tail < 0 ? buffer.length : tail;
              if (safeEnd > position) {
                if (!cancelled) controller.enqueue(buffer.subarray(position, safeEnd));
                position = safeEnd;
                if (!cancelled) return;
              }
              if (!(await fill())) throw malformed("the body ends inside a part");
            }
          } catch (error) {
            controller.error(error);
            throw error;
          }
        },
        cancel() {
          cancelled = true;
        },
      }, { highWaterMark: 0 });
      yield { ...part, body: content };
      if (!partDone) {
        // The consumer did not read the part to its end: skip the rest of it.
        cancelled = true;
        for (;;) {
          const at = findDelimiter(buffer, position);
          if (at >= 0) {
            position = at + delimiter.length;
            break;
          }
          const tail = indexOfByte(buffer, CR, Math.max(position, buffer.length - (delimiter.length - 1)));
          position = tail < 0 ? buffer.length : tail;
          if (!(await fill())) throw malformed("the body ends inside a part");
        }
      }
    }
  } finally {
    // Stops the body (nothing happens once it ended).
    if (!ended) await chunks.return?.().catch(() => {});
  }
}

function describePart(headers: string): Omit<FormPart, "body"> {
  let name: string | null = null;
  let filename: string | null = null;
  let contentType: string | null = null;
  for (const line of headers.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const field = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (field === "content-type") contentType = value;
    if (field !== "content-disposition") continue;
    for (const match of value.matchAll(/;\s*(name|filename\*?)=(?:"((?:[^"\\]|\\.)*)"|([^;]*))/gi)) {
      const key = match[1].toLowerCase();
      let text = match[2] !== undefined ? match[2].replace(/\\(.)/g, "$1") : match[3].trim();
      if (key === "filename*") {
        const encoded = /^[^']*'[^']*'(.*)$/.exec(text);
        if (encoded) {
          try {
            text = decodeURIComponent(encoded[1]);
          } catch {
            continue;
          }
        }
        filename = text;
      } else if (key === "filename") {
        filename ??= text;
      } else {
        name = text;
      }
    }
  }
  if (name === null) throw malformed("a part has no name");
  return { name, filename, contentType };
}
