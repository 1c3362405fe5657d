/**
 * A message batch's results in Anthropic's shape: each line of its output and
 * error files (OpenAI's result records) as `{"custom_id", "result"}`, whose
 * `type` is `succeeded` (with the Message, byte for byte), `errored` (with an
 * error in Anthropic's shape), `canceled` or `expired`.
 *
 * @module
 */
import { rawMemberValue } from "../input/raw_json.ts";

/** Anthropic's error type for an HTTP status. */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
    case 415:
    case 422:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 408:
      return "timeout_error";
    case 409:
      return "conflict_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 529:
      return "overloaded_error";
    default:
      return "api_error";
  }
}

interface ResultRecord {
  custom_id: string;
  response: { status_code: number; request_id?: string | null; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}

/** An error in Anthropic's shape, for an errored result. */
function erroredResult(type: string, message: string, requestId: string | null): string {
  return JSON.stringify({ type: "errored", error: { type: "error", error: { type, message }, request_id: requestId } });
}

/** What an upstream's error answer says, as text. */
function messageOf(body: Record<string, unknown>, status: number): string {
  const error = body.error as { message?: unknown } | string | undefined;
  if (typeof error === "object" && error !== null && typeof error.message === "string") return error.message;
  if (typeof error === "string") return error;
  if (typeof body.detail === "string") return body.detail;
  return `The upstream answered ${status}.`;
}

/**
 * One result record (a line of a batch's output or error file) as a message
 * batch result line (without its newline).
 *
 * @example
 * ```ts
 * messageBatchResult('{"id":"batch_req_…","custom_id":"a","response":{"status_code":200,"request_id":null,"body":{"type":"message",…}},"error":null}');
 * // '{"custom_id":"a","result":{"type":"succeeded","message":{"type":"message",…}}}'
 * ```
 */
export function messageBatchResult(line: string): string {
  const record = JSON.parse(line) as ResultRecord;
  const customId = JSON.stringify(record.custom_id);
  const { response, error } = record;
  let result: string;
  if (response && response.status_code >= 200 && response.status_code < 300) {
    // The Message as the upstream (or the translation) wrote it.
    result = `{"type":"succeeded","message":${rawMemberValue(rawMemberValue(line, "response")!, "body")}}`;
  } else if (error?.code === "batch_expired") {
    result = '{"type":"expired"}';
  } else if (error?.code === "batch_cancelled") {
    result = '{"type":"canceled"}';
  } else if (response) {
    const body = response.body ?? {};
    const given = body.type === "error" && typeof body.error === "object" && body.error !== null
      ? body.error as { type?: unknown; message?: unknown }
      : null;
    // An error already in Anthropic's shape (a native upstream's, or a request the translation refused) is kept.
    result = given && typeof given.type === "string" && typeof given.message === "string"
      ? erroredResult(given.type, given.message, response.request_id ?? null)
      : erroredResult(anthropicErrorType(response.status_code), messageOf(body, response.status_code), response.request_id ?? null);
  } else {
    result = erroredResult("api_error", error ? `${error.code}: ${error.message}` : "The request got no answer.", null);
  }
  return `{"custom_id":${customId},"result":${result}}`;
}
