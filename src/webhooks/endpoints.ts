/**
 * Which endpoint each owner's webhook events go to, from the server's
 * configuration: without API keys, one endpoint (`--webhook-url`,
 * `--webhook-secret`) for every batch; with API keys, a file that gives each
 * key its own endpoint (`--webhooks-file`), so a key's events never reach
 * another key's endpoint.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { WEBHOOK_SECRET } from "./signature.ts";
import type { WebhookEndpoint } from "./deliverer.ts";

/** What the configuration says about webhooks. */
export interface WebhookSettings {
  url: string | undefined;
  secret: string | undefined;
  /** A JSON file: `{"<api key>": {"url": "https://…", "secret": "whsec_…"}, …}`. */
  file: string | undefined;
}

/** A webhook setting that cannot work; the message says why. */
export class WebhookConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookConfigError";
  }
}

/**
 * The endpoint of each owner (none: no webhooks), checked.
 *
 * @param ownerOfKey how the server names the owner of an API key
 * @throws {WebhookConfigError} a missing or malformed URL or secret, or a single endpoint with API keys
 */
export function webhookEndpoints(
  settings: WebhookSettings,
  apiKeys: readonly string[],
  ownerOfKey: (key: string) => string,
  defaultOwner: string,
): Map<string, WebhookEndpoint> | null {
  const endpoints = new Map<string, WebhookEndpoint>();
  if (settings.url !== undefined || settings.secret !== undefined) {
    if (apiKeys.length > 0) {
      throw new WebhookConfigError(
        "--webhook-url would send every API key's events to one endpoint: give each key its own with --webhooks-file",
      );
    }
    endpoints.set(defaultOwner, checked({ url: settings.url, secret: settings.secret }, "--webhook-url / --webhook-secret"));
  }
  if (settings.file !== undefined) {
    if (apiKeys.length === 0) throw new WebhookConfigError("--webhooks-file names API keys, but the server has none");
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(settings.file, "utf8"));
    } catch (error) {
      throw new WebhookConfigError(`--webhooks-file ${settings.file}: ${(error as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new WebhookConfigError(`--webhooks-file ${settings.file}: expected {"<api key>": {"url": …, "secret": …}}`);
    }
    for (const [key, value] of Object.entries(parsed)) {
      if (!apiKeys.includes(key)) throw new WebhookConfigError(`--webhooks-file names a key the server does not accept (owner ${ownerOfKey(key)})`);
      endpoints.set(ownerOfKey(key), checked(value as Partial<WebhookEndpoint>, `--webhooks-file entry of owner ${ownerOfKey(key)}`));
    }
  }
  return endpoints.size ? endpoints : null;
}

function checked(value: Partial<WebhookEndpoint>, what: string): WebhookEndpoint {
  const { url, secret } = value ?? {};
  try {
    const parsed = new URL(String(url));
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error();
  } catch {
    throw new WebhookConfigError(`${what}: the URL must be http(s), got ${JSON.stringify(url)}`);
  }
  if (typeof secret !== "string" || !WEBHOOK_SECRET.test(secret)) {
    throw new WebhookConfigError(`${what}: the secret must be whsec_ and the base64 of at least 24 bytes`);
  }
  return { url: String(url), secret };
}
