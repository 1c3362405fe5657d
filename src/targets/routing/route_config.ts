/**
 * Routes as operators write them: `--upstream [model-pattern=]url`, given as
 * often as needed (the same pattern again adds a replica), or a routes file
 * (JSON or YAML) with each upstream's key, concurrency, budgets and timeout.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import type { UpstreamRoute } from "./routed_target.ts";

/** A route that cannot be used as written. */
export class RouteConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RouteConfigError";
  }
}

/** The URL `mock` names the built-in mock target. */
export const MOCK_URL = "mock";

/** Checks one upstream URL: http(s), or `mock`. */
function checkedUrl(url: string, where: string): string {
  if (url === MOCK_URL) return url;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return url;
  } catch {
    // Said below.
  }
  throw new RouteConfigError(`${where} must be an http(s) URL or "mock", got ${JSON.stringify(url)}`);
}

/**
 * Routes from `--upstream` values: `url` (the default route) or
 * `pattern=url`; values with the same pattern are replicas of one route.
 * Routes keep the order of their first value; the default route goes last, so
 * a pattern never loses to it.
 *
 * @example
 * ```ts
 * routesFromArgs(["llama-*=http://gpu1:8000/v1", "llama-*=http://gpu2:8000/v1", "https://api.openai.com/v1"]);
 * // [{ model: "llama-*", urls: [gpu1, gpu2] }, { urls: ["https://api.openai.com/v1"] }]
 * ```
 */
export function routesFromArgs(values: readonly string[]): UpstreamRoute[] {
  const routes = new Map<string | undefined, UpstreamRoute>();
  for (const value of values) {
    // A URL's own `=` (in its query) comes after `://`; a pattern's `=` comes before.
    const equals = value.indexOf("=");
    const scheme = value.indexOf("://");
    const split = equals > 0 && (scheme === -1 || equals < scheme);
    const model = split ? value.slice(0, equals).trim() : undefined;
    const url = checkedUrl(split ? value.slice(equals + 1).trim() : value.trim(), "--upstream");
    if (model === "*" || model === "") throw new RouteConfigError(`--upstream: write the default upstream without a pattern, got ${JSON.stringify(value)}`);
    const route = routes.get(model);
    if (route) route.urls.push(url);
    else routes.set(model, model === undefined ? { urls: [url] } : { model, urls: [url] });
  }
  return [...routes.values()].sort((a, b) => Number(a.model === undefined) - Number(b.model === undefined));
}

const ROUTE_FIELDS: Record<string, "string" | "number" | "boolean" | "urls"> = {
  model: "string",
  url: "urls",
  urls: "urls",
  api_key: "string",
  concurrency: "number",
  rpm: "number",
  tpm: "number",
  timeout_seconds: "number",
  adaptive: "boolean",
};

/**
 * Routes from a routes file's text: `{ "upstreams": [ … ] }` (or the list
 * alone), each entry `{ model?, url | urls, api_key?, concurrency?, rpm?,
 * tpm?, timeout_seconds?, adaptive? }`, first match first. YAML is read as
 * JSON's superset; `api_key` may be written `env:NAME` to keep it out of the file.
 */
export function routesFromFile(text: string, env: Record<string, string | undefined>, where = "--routes-file"): UpstreamRoute[] {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new RouteConfigError(`${where} is neither JSON nor YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  const entries = Array.isArray(document) ? document : (document as { upstreams?: unknown } | null)?.upstreams;
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new RouteConfigError(`${where} must list upstreams: { "upstreams": [{ "model": "llama-*", "url": "http://…/v1" }, …] }`);
  }
  const routes = entries.map((entry, index) => routeOf(entry, `${where} upstream ${index + 1}`, env));
  const defaults = routes.filter((route) => route.model === undefined).length;
  if (defaults > 1) throw new RouteConfigError(`${where} has ${defaults} upstreams without a model pattern; at most one is the default`);
  return routes;
}

function routeOf(entry: unknown, where: string, env: Record<string, string | undefined>): UpstreamRoute {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw new RouteConfigError(`${where} must be an object`);
  const fields = entry as Record<string, unknown>;
  for (const [name, value] of Object.entries(fields)) {
    const kind = ROUTE_FIELDS[name];
    if (!kind) throw new RouteConfigError(`${where} has an unknown field ${JSON.stringify(name)} (known: ${Object.keys(ROUTE_FIELDS).join(", ")})`);
    const ok = kind === "urls"
      ? typeof value === "string" || (Array.isArray(value) && value.length > 0 && value.every((url) => typeof url === "string"))
      : kind === "number"
      ? Number.isInteger(value) && (value as number) >= 1
      : kind === "boolean"
      ? typeof value === "boolean"
      : typeof value === "string";
    if (!ok) {
      const wanted = kind === "urls" ? "a URL or a list of URLs" : kind === "number" ? "a positive integer" : `a ${kind}`;
      throw new RouteConfigError(`${where}: ${name} must be ${wanted}, got ${JSON.stringify(value)}`);
    }
  }
  if ((fields.url === undefined) === (fields.urls === undefined)) throw new RouteConfigError(`${where} needs exactly one of url and urls`);
  const urls = ([] as string[]).concat((fields.url ?? fields.urls) as string | string[]).map((url) => checkedUrl(url, `${where}: url`));
  const route: UpstreamRoute = { urls };
  if (fields.model !== undefined) route.model = fields.model as string;
  if (fields.api_key !== undefined) route.apiKey = secretOf(fields.api_key as string, where, env);
  if (fields.concurrency !== undefined) route.concurrency = fields.concurrency as number;
  if (fields.rpm !== undefined) route.requestsPerMinute = fields.rpm as number;
  if (fields.tpm !== undefined) route.tokensPerMinute = fields.tpm as number;
  if (fields.timeout_seconds !== undefined) route.timeoutMs = (fields.timeout_seconds as number) * 1000;
  if (fields.adaptive !== undefined) route.adaptive = fields.adaptive as boolean;
  return route;
}

/** `env:NAME` reads the key from the environment. */
function secretOf(value: string, where: string, env: Record<string, string | undefined>): string {
  if (!value.startsWith("env:")) return value;
  const found = env[value.slice(4)];
  if (!found) throw new RouteConfigError(`${where}: api_key names ${value.slice(4)}, which is not set`);
  return found;
}
