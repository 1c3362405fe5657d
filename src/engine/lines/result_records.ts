/**
 * The lines of output and error files, exactly in OpenAI's shape. Every record
 * starts with its `id`, whose suffix names the input line (see `ids.ts`).
 *
 * @module
 */
import { newRequestId } from "../../batch/model/ids.ts";

/** A response that came back from the target. */
export interface ResponseRecord {
  status_code: number;
  request_id: string | null;
  body: unknown;
}

/**
 * The record of a request that got a response (2xx for the output file, any
 * other status for the error file). `bodyJson`, when given, is the body's JSON
 * text exactly as received (it must be the JSON of `response.body`).
 *
 * @example
 * ```ts
 * responseRecord(3, "req-3", { status_code: 200, request_id: "r1", body: {} });
 * // {"id":"batch_req_…_3","custom_id":"req-3","response":{…},"error":null}
 * ```
 */
export function responseRecord(line: number, customId: string, response: ResponseRecord, bodyJson?: string): string {
  // The body's own JSON text is spliced in when it has no line breaks (but the blanks
  // around it, such as the newline many servers end a body with): serialising the
  // parsed body again would cost as much as parsing it did.
  const json = bodyJson?.trim();
  if (json === undefined || json.includes("\n") || json.includes("\r")) {
    return JSON.stringify({ id: newRequestId(line), custom_id: customId, response, error: null });
  }
  return `{"id":"${newRequestId(line)}","custom_id":${JSON.stringify(customId)},"response":{"status_code":${response.status_code},"request_id":${
    JSON.stringify(response.request_id)
  },"body":${json}},"error":null}`;
}

/** The record of a request that never got a response. */
export function failureRecord(line: number, customId: string, error: { code: string; message: string }): string {
  return JSON.stringify({ id: newRequestId(line), custom_id: customId, response: null, error });
}

/** OpenAI's message for lines a window's expiry left undone. */
export const EXPIRED_MESSAGE = "This request could not be executed before the completion window expired.";
/** The error of a request of a message batch that was cancelled before it ran. */
export const CANCELLED_MESSAGE = "This request was not executed: its batch was cancelled.";
