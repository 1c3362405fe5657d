/**
 * API keys and owners. With keys configured, each request must carry one as
 * `Authorization: Bearer <key>` or `x-api-key: <key>` (compared in constant time), and each key is
 * its own owner: it sees only its own files and batches. With no keys, every
 * request belongs to the owner `default`.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { sha256Hex } from "../../integrity/sha256.ts";
import { RequestError } from "../request_error.ts";

/** The owner of requests when no API keys are configured. */
export const DEFAULT_OWNER = "default";

/** Hono context variables set by {@link apiKeyAuth}. */
export interface OwnerVariables {
  owner: string;
}

/** The storage-safe owner name of an API key (never the key itself). */
export function ownerOfKey(apiKey: string): string {
  return `key-${sha256Hex(apiKey).slice(0, 32)}`;
}

/**
 * Middleware that authenticates the request and sets `c.var.owner`.
 *
 * @example
 * ```ts
 * app.use("/v1/*", apiKeyAuth(["sk-team-a", "sk-team-b"]));
 * ```
 */
export function apiKeyAuth(apiKeys: readonly string[]): MiddlewareHandler<{ Variables: OwnerVariables }> {
  const keys = apiKeys.map((key) => ({ key, owner: ownerOfKey(key) }));
  return async (c, next) => {
    if (keys.length === 0) {
      c.set("owner", DEFAULT_OWNER);
      return next();
    }
    const header = c.req.header("authorization");
    // Anthropic's SDKs send their key as `x-api-key`.
    const given = (header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined) ?? c.req.header("x-api-key")?.trim();
    if (!given) {
      throw new RequestError(
        "missing_api_key",
        "You didn't provide an API key. Send it in the Authorization header as 'Bearer YOUR_KEY' (or as 'x-api-key').",
      );
    }
    let owner: string | null = null;
    // Compare against every key, so timing does not reveal which one matched.
    for (const candidate of keys) {
      if (await timingSafeEqual(candidate.key, given)) owner ??= candidate.owner;
    }
    if (owner === null) throw new RequestError("invalid_api_key", "Incorrect API key provided.");
    c.set("owner", owner);
    return next();
  };
}
