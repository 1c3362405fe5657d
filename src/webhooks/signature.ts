/**
 * Standard Webhooks signatures, the scheme OpenAI signs its webhooks with: an
 * HMAC-SHA256 (`@noble/hashes`, the project's hashing library) of
 * `{webhook-id}.{webhook-timestamp}.{body}` under the secret's bytes (the
 * base64 after `whsec_`), sent as `webhook-signature: v1,{base64}`. The
 * `standardwebhooks` library and the `openai` SDK's `webhooks.unwrap()`
 * verify it.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** A secret as Standard Webhooks writes them: `whsec_` and the base64 of at least 24 random bytes. */
export const WEBHOOK_SECRET = /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/;

/**
 * The headers that sign one delivery of `body`.
 *
 * @example
 * ```ts
 * const headers = signatureHeaders("whsec_…", "evt_…", Math.floor(Date.now() / 1000), body);
 * // { "webhook-id": "evt_…", "webhook-timestamp": "1796000000", "webhook-signature": "v1,…" }
 * ```
 */
export function signatureHeaders(secret: string, id: string, timestampSeconds: number, body: string): Record<string, string> {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const mac = hmac(sha256, key, new TextEncoder().encode(`${id}.${timestampSeconds}.${body}`));
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": `v1,${Buffer.from(mac).toString("base64")}`,
  };
}
