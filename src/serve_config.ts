/**
 * The configuration of `batchspool serve`: its flags, their environment
 * variables, defaults and checks, and the usage text that lists them.
 *
 * @module
 */
import { DEFAULT_MAX_STREAMS_PER_KEY } from "./http/batch_events.ts";
export { SERVE_USAGE } from "./serve_usage.ts";
import { parseArgs } from "node:util";
import { DEFAULT_OWNER, ownerOfKey } from "./http/access/auth.ts";
import { SCHEMA_NAME } from "./storage/postgres/migrations.ts";
import type { MessagesMode } from "./targets/messages/messages_target.ts";
import { DEFAULT_SCHEMA } from "./storage/postgres/postgres_storage.ts";
import type { WebhookEndpoint } from "./webhooks/deliverer.ts";
import { WebhookConfigError, webhookEndpoints } from "./webhooks/endpoints.ts";
import type { ModelBudget } from "./engine/lines/model_budgets.ts";
import { DEFAULT_ENDPOINTS } from "./batch/model/batch_params.ts";
import { readFileSync } from "node:fs";
import type { UpstreamRoute } from "./targets/routing/routed_target.ts";
import { RouteConfigError, routesFromArgs, routesFromFile } from "./targets/routing/route_config.ts";

/** The server's settings after flags and environment are read. */
export interface ServeConfig {
  host: string;
  port: number;
  dataDir: string;
  /** A PostgreSQL URL: state in the database instead of the data directory. */
  databaseUrl: string | undefined;
  /** The schema of the database that holds batchspool's tables. */
  databaseSchema: string;
  /** Where lines go, first match first (`--upstream`, `--routes-file`); one route of one URL for a single upstream. */
  routes: UpstreamRoute[];
  /** The key of upstreams whose route names none. */
  upstreamKey: string | undefined;
  /** How lines of Anthropic's Messages API reach the upstream. */
  messagesUpstream: MessagesMode;
  /** The server's base URL as clients reach it (for absolute URLs it gives out), or undefined: each request's own. */
  publicUrl: string | undefined;
  apiKeys: string[];
  /** Each owner's share of the upstream relative to the others' (by `--key-weights`; absent: 1). */
  ownerWeights: Map<string, number>;
  noAuth: boolean;
  /** Most event streams one API key may hold open at once. */
  maxEventStreams: number;
  /** A listener of its own for /metrics and /cluster (undefined: none). */
  admin: { host: string; port: number } | undefined;
  /** Host names a server without API keys answers to besides loopback names and its address; `*`: any. */
  allowedHosts: string[] | "*";
  concurrency: number;
  requestsPerMinute: number | undefined;
  tokensPerMinute: number | undefined;
  /** Endpoints a batch may target besides the built-in ones (`--endpoint`), forwarded as they are. */
  endpoints: string[];
  /** Send lines sharing leading messages together (off with `--no-prefix-grouping`). */
  prefixGrouping: boolean;
  /** Budgets by model (`--model-budget`), in the order given. */
  modelBudgets: ModelBudget[];
  maxRetries: number;
  requestTimeoutMs: number;
  checkpointIntervalMs: number;
  mockLatencyMs: number;
  /** Validate uploads on a worker thread; undefined: the runtime's default (on Deno only). */
  scanWorker: boolean | undefined;
  /** The data directory's lock goes stale once not refreshed for this long. */
  lockStaleAfterMs: number;
  /** Longest upstream answer accepted. */
  maxResponseBytes: number;
  /** A client connection (or upload) on which nothing arrives for this long is dropped. */
  idleTimeoutMs: number;
  /** Where each owner's webhook events go (null: nowhere). */
  webhooks: Map<string, WebhookEndpoint> | null;
  /** This node's name in a cluster (with a database); undefined: host name and a random suffix. */
  nodeId: string | undefined;
  /** How long a node's claim on work lasts without its heartbeat. */
  leaseSeconds: number;
  /** Most lines in one slice of a batch (the unit nodes share). */
  sliceLines: number;
}

/** A start-up problem: printed with the usage, exit code 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}


function integer(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new ConfigError(`${name} must be an integer of at least ${min}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/** How an environment variable says yes or no. */
const ENV_YES = ["1", "true", "yes"];
const ENV_NO = ["0", "false", "no"];

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;

/**
 * Reads the serve configuration from arguments and environment.
 *
 * @throws {ConfigError} naming the option at fault.
 */
export function readServeConfig(args: string[], env: Record<string, string | undefined>): ServeConfig {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        data: { type: "string" },
        database: { type: "string" },
        "database-schema": { type: "string" },
        "node-id": { type: "string" },
        "lease-seconds": { type: "string" },
        "slice-lines": { type: "string" },
        upstream: { type: "string", multiple: true },
        "routes-file": { type: "string" },
        "upstream-key": { type: "string" },
        "messages-upstream": { type: "string" },
        "api-key": { type: "string", multiple: true },
        "key-weights": { type: "string" },
        "model-budget": { type: "string", multiple: true },
        endpoint: { type: "string", multiple: true },
        "no-auth": { type: "boolean" },
        "allowed-hosts": { type: "string" },
        "public-url": { type: "string" },
        "admin-port": { type: "string" },
        "max-event-streams": { type: "string" },
        "admin-host": { type: "string" },
        concurrency: { type: "string" },
        rpm: { type: "string" },
        tpm: { type: "string" },
        "max-retries": { type: "string" },
        "request-timeout": { type: "string" },
        "max-response-mib": { type: "string" },
        "checkpoint-interval": { type: "string" },
        "mock-latency": { type: "string" },
        "lock-stale-after": { type: "string" },
        "idle-timeout": { type: "string" },
        "scan-worker": { type: "boolean" },
        "no-prefix-grouping": { type: "boolean" },
        "no-scan-worker": { type: "boolean" },
        "webhook-url": { type: "string" },
        "webhook-secret": { type: "string" },
        "webhooks-file": { type: "string" },
      },
    }));
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const routes = routesOf(values.upstream, values["routes-file"] ?? env.BATCHSPOOL_ROUTES_FILE, env);
  const apiKeys = [
    ...(values["api-key"] ?? []),
    ...(env.BATCHSPOOL_API_KEYS ?? "").split(","),
  ].map((key) => key.trim()).filter(Boolean);
  const ownerWeights = keyWeightsOf(values["key-weights"] ?? env.BATCHSPOOL_KEY_WEIGHTS, apiKeys);
  const host = values.host ?? env.BATCHSPOOL_HOST ?? "127.0.0.1";
  const noAuth = values["no-auth"] ?? ENV_YES.includes(env.BATCHSPOOL_NO_AUTH ?? "");
  if (apiKeys.length === 0 && !noAuth && !LOOPBACK.test(host)) {
    throw new ConfigError(
      `refusing to serve ${host} without API keys: pass --api-key <key> (or BATCHSPOOL_API_KEYS), ` +
        `bind a loopback address, or pass --no-auth to accept anyone`,
    );
  }
  let webhooks;
  try {
    webhooks = webhookEndpoints({
      url: values["webhook-url"] ?? env.BATCHSPOOL_WEBHOOK_URL,
      secret: values["webhook-secret"] ?? env.BATCHSPOOL_WEBHOOK_SECRET,
      file: values["webhooks-file"] ?? env.BATCHSPOOL_WEBHOOKS_FILE,
    }, apiKeys, ownerOfKey, DEFAULT_OWNER);
  } catch (error) {
    if (error instanceof WebhookConfigError) throw new ConfigError(error.message);
    throw error;
  }
  const nodeId = values["node-id"] ?? env.BATCHSPOOL_NODE_ID;
  if (nodeId !== undefined && !/^[\w.:-]{1,100}$/.test(nodeId)) {
    throw new ConfigError(`--node-id must be 1-100 letters, digits or _.:-, got ${JSON.stringify(nodeId)}`);
  }
  return {
    webhooks,
    nodeId,
    leaseSeconds: integer(values["lease-seconds"] ?? env.BATCHSPOOL_LEASE_SECONDS, "--lease-seconds", 1) ?? 15,
    sliceLines: integer(values["slice-lines"] ?? env.BATCHSPOOL_SLICE_LINES, "--slice-lines", 1) ?? 256,
    host,
    port: integer(values.port ?? env.BATCHSPOOL_PORT, "--port", 0) ?? 8787,
    dataDir: values.data ?? env.BATCHSPOOL_DATA ?? "./batchspool-data",
    databaseUrl: databaseUrlOf(values.database ?? env.BATCHSPOOL_DATABASE_URL),
    databaseSchema: schemaOf(values["database-schema"] ?? env.BATCHSPOOL_DATABASE_SCHEMA ?? DEFAULT_SCHEMA),
    routes,
    upstreamKey: values["upstream-key"] ?? env.BATCHSPOOL_UPSTREAM_KEY ?? env.OPENAI_API_KEY,
    messagesUpstream: messagesModeOf(values["messages-upstream"] ?? env.BATCHSPOOL_MESSAGES_UPSTREAM),
    publicUrl: publicUrlOf(values["public-url"] ?? env.BATCHSPOOL_PUBLIC_URL),
    apiKeys,
    ownerWeights,
    noAuth,
    allowedHosts: allowedHostsOf(values["allowed-hosts"] ?? env.BATCHSPOOL_ALLOWED_HOSTS),
    maxEventStreams: integer(values["max-event-streams"] ?? env.BATCHSPOOL_MAX_EVENT_STREAMS, "--max-event-streams", 1) ??
      DEFAULT_MAX_STREAMS_PER_KEY,
    admin: adminOf(values["admin-port"] ?? env.BATCHSPOOL_ADMIN_PORT, values["admin-host"] ?? env.BATCHSPOOL_ADMIN_HOST),
    concurrency: integer(values.concurrency ?? env.BATCHSPOOL_CONCURRENCY, "--concurrency", 1) ?? 32,
    requestsPerMinute: integer(values.rpm ?? env.BATCHSPOOL_RPM, "--rpm", 1),
    tokensPerMinute: integer(values.tpm ?? env.BATCHSPOOL_TPM, "--tpm", 1),
    endpoints: endpointsOf([...(values.endpoint ?? []), ...(env.BATCHSPOOL_ENDPOINTS ?? "").split(",")]),
    prefixGrouping: !(values["no-prefix-grouping"] ?? ENV_NO.includes(env.BATCHSPOOL_PREFIX_GROUPING ?? "")),
    modelBudgets: [...(values["model-budget"] ?? []), ...(env.BATCHSPOOL_MODEL_BUDGETS ?? "").split(";")]
      .map((rule) => rule.trim()).filter(Boolean).map(modelBudgetOf),
    maxRetries: integer(values["max-retries"] ?? env.BATCHSPOOL_MAX_RETRIES, "--max-retries", 0) ?? 5,
    requestTimeoutMs: (integer(values["request-timeout"] ?? env.BATCHSPOOL_REQUEST_TIMEOUT, "--request-timeout", 1) ?? 600) *
      1000,
    checkpointIntervalMs:
      (integer(values["checkpoint-interval"] ?? env.BATCHSPOOL_CHECKPOINT_INTERVAL, "--checkpoint-interval", 1) ?? 5) *
      1000,
    mockLatencyMs: integer(values["mock-latency"] ?? env.BATCHSPOOL_MOCK_LATENCY, "--mock-latency", 0) ?? 0,
    scanWorker: scanWorkerChoice(values["scan-worker"], values["no-scan-worker"], env.BATCHSPOOL_SCAN_WORKER),
    maxResponseBytes:
      (integer(values["max-response-mib"] ?? env.BATCHSPOOL_MAX_RESPONSE_MIB, "--max-response-mib", 1) ?? 64) * 1024 * 1024,
    idleTimeoutMs: (integer(values["idle-timeout"] ?? env.BATCHSPOOL_IDLE_TIMEOUT, "--idle-timeout", 1) ?? 120) * 1000,
    lockStaleAfterMs:
      (integer(values["lock-stale-after"] ?? env.BATCHSPOOL_LOCK_STALE_AFTER, "--lock-stale-after", 1) ?? 10) * 1000,
  };
}

/** The routes of `--upstream` values (else `BATCHSPOOL_UPSTREAM`'s, space-separated) or of a routes file. */
function routesOf(args: string[] | undefined, file: string | undefined, env: Record<string, string | undefined>): UpstreamRoute[] {
  const values = args?.length ? args : (env.BATCHSPOOL_UPSTREAM ?? "").split(/\s+/).filter(Boolean);
  try {
    if (file !== undefined) {
      if (values.length) throw new ConfigError("give upstreams either with --upstream or in --routes-file, not both");
      let text;
      try {
        text = readFileSync(file, "utf8");
      } catch (error) {
        throw new ConfigError(`--routes-file ${JSON.stringify(file)} cannot be read: ${(error as Error).message}`);
      }
      return routesFromFile(text, env);
    }
    if (!values.length) {
      throw new ConfigError(
        "no upstream: pass --upstream <url> (an OpenAI-style base URL including /v1, e.g. http://127.0.0.1:8000/v1), " +
          "--upstream <model-pattern>=<url> for each model server, --upstream mock, or --routes-file; or set BATCHSPOOL_UPSTREAM",
      );
    }
    return routesFromArgs(values);
  } catch (error) {
    if (error instanceof RouteConfigError) throw new ConfigError(error.message);
    throw error;
  }
}

/** `--endpoint` paths, checked: `/v1/…` POST endpoints besides the built-in ones, each once. */
function endpointsOf(paths: readonly string[]): string[] {
  const endpoints: string[] = [];
  for (const path of paths.map((p) => p.trim()).filter(Boolean)) {
    if (!/^\/v1\/[A-Za-z0-9][A-Za-z0-9_.\/-]{0,199}$/.test(path) || path.includes("//") || path.includes("/../")) {
      throw new ConfigError(`--endpoint wants a path under /v1/, e.g. /v1/rerank, got ${JSON.stringify(path)}`);
    }
    if (!DEFAULT_ENDPOINTS.includes(path) && !endpoints.includes(path)) endpoints.push(path);
  }
  return endpoints;
}

/** A `--model-budget` rule, checked: `<pattern>=rpm:<n>,tpm:<n>` (either or both). */
function modelBudgetOf(rule: string): ModelBudget {
  const at = rule.indexOf("=");
  const pattern = rule.slice(0, at).trim();
  const budget: ModelBudget = { pattern };
  const wrong = () =>
    new ConfigError(`--model-budget wants <model pattern>=rpm:<n>,tpm:<n> (either or both), got ${JSON.stringify(rule)}`);
  if (at < 1) throw wrong();
  for (const part of rule.slice(at + 1).split(",")) {
    const match = /^\s*(rpm|tpm):(\d+)\s*$/.exec(part);
    if (!match || Number(match[2]) < 1) throw wrong();
    if (match[1] === "rpm") budget.requestsPerMinute = Number(match[2]);
    else budget.tokensPerMinute = Number(match[2]);
  }
  return budget;
}

/** `--key-weights`, checked: `key=weight` pairs of configured keys, by owner (the key itself is never kept). */
function keyWeightsOf(text: string | undefined, apiKeys: readonly string[]): Map<string, number> {
  const weights = new Map<string, number>();
  if (text === undefined || text.trim() === "") return weights;
  for (const pair of text.split(",")) {
    const at = pair.lastIndexOf("=");
    const key = pair.slice(0, at).trim();
    const weight = Number(pair.slice(at + 1).trim());
    if (at < 1 || !(weight > 0) || weight > 1_000_000) {
      throw new ConfigError(`--key-weights wants <api key>=<weight> pairs, each weight a number above 0, got ${JSON.stringify(redactPair(pair))}`);
    }
    if (!apiKeys.includes(key)) throw new ConfigError(`--key-weights names a key that is not one of --api-key: ${JSON.stringify(redactPair(pair))}`);
    weights.set(ownerOfKey(key), weight);
  }
  return weights;
}

/** A `key=weight` pair with the key hidden but its first characters, for an error message. */
function redactPair(pair: string): string {
  const at = pair.lastIndexOf("=");
  const key = at < 0 ? pair : pair.slice(0, at);
  return `${key.trim().slice(0, 4)}…${at < 0 ? "" : pair.slice(at)}`;
}

/** `--public-url`, checked: an http(s) URL, without a trailing slash. */
function publicUrlOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    const url = new URL(text);
    if ((url.protocol === "http:" || url.protocol === "https:") && !url.search && !url.hash) return text.replace(/\/+$/, "");
  } catch { /* refused below */ }
  throw new ConfigError(`--public-url must be an http(s) URL without query, e.g. https://batch.example.com, got ${JSON.stringify(text)}`);
}

/** `--messages-upstream`, checked. */
function messagesModeOf(text: string | undefined): MessagesMode {
  if (text === undefined) return "auto";
  if (text === "native" || text === "translate" || text === "auto") return text;
  throw new ConfigError(`--messages-upstream must be native, translate or auto, got ${JSON.stringify(text)}`);
}

/** `--scan-worker`, `--no-scan-worker` or the environment's choice; undefined leaves it to the runtime's default. */
function scanWorkerChoice(on: boolean | undefined, off: boolean | undefined, env: string | undefined): boolean | undefined {
  if (on && off) throw new ConfigError("--scan-worker and --no-scan-worker contradict each other");
  if (on || off) return Boolean(on);
  if (env === undefined || env === "") return undefined;
  if (ENV_YES.includes(env)) return true;
  if (ENV_NO.includes(env)) return false;
  throw new ConfigError(`BATCHSPOOL_SCAN_WORKER must be 1 or 0, got ${JSON.stringify(env)}`);
}


function databaseUrlOf(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`--database must be a postgres:// URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`--database must be a postgres:// URL, got ${url.protocol} one`);
  }
  return value;
}

function schemaOf(value: string): string {
  if (!SCHEMA_NAME.test(value)) {
    throw new ConfigError(`--database-schema must be a lower-case identifier (letters, digits, _), got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `--allowed-hosts`: names without ports, comma-separated, or `*`. */
function allowedHostsOf(value: string | undefined): string[] | "*" {
  if (value === undefined) return [];
  if (value.trim() === "*") return "*";
  const hosts = value.split(",").map((host) => host.trim()).filter(Boolean);
  for (const host of hosts) {
    if (!/^[\w.-]+$|^\[?[\d:a-f]+\]?$/i.test(host)) {
      throw new ConfigError(`--allowed-hosts takes host names without ports, comma-separated, or "*"; got ${JSON.stringify(host)}`);
    }
  }
  return hosts;
}

/** `--admin-port` and `--admin-host`: a listener for the operator's routes, or none. */
function adminOf(port: string | undefined, host: string | undefined): ServeConfig["admin"] {
  if (port === undefined) {
    if (host !== undefined) throw new ConfigError("--admin-host needs --admin-port");
    return undefined;
  }
  return { host: host ?? "127.0.0.1", port: integer(port, "--admin-port", 0)! };
}

/** Whether a host is a loopback address (or name). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.test(host);
}
