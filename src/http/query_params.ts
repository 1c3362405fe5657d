/**
 * Reading list parameters from a query string, strictly.
 *
 * @module
 */
import { RequestError } from "./request_error.ts";

/** An integer query parameter, or undefined when absent. @throws {RequestError} when not an integer. */
export function integerParam(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^-?\d{1,9}$/.test(value)) {
    throw new RequestError("invalid_request", `Invalid '${name}': ${JSON.stringify(value)} is not an integer.`, {
      param: name,
    });
  }
  return Number(value);
}

/** A list response in OpenAI's shape. */
export function listBody<T extends { id: string }>(data: T[], hasMore: boolean): {
  object: "list";
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
} {
  return {
    object: "list",
    data,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
    has_more: hasMore,
  };
}
