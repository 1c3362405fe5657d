/**
 * The OpenAPI 3.1 document of every route, served at `GET /openapi.json`.
 * Written out rather than generated: the routes parse multipart and stream
 * bodies by hand, which route-schema libraries do not describe; a test checks
 * the document against the OpenAPI schema and against the app's routes, so
 * neither drifts from the other.
 *
 * One cohesive thing: a single literal document, long because the API is.
 *
 * @module
 */
import { UPLOAD_PURPOSES } from "../batch/model/objects.ts";
import { MESSAGE_BATCH_SCHEMAS, messageBatchPaths } from "./anthropic/openapi_message_batches.ts";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ "application/json": { schema } });
const ok = (description: string, schema: object) => ({ description, content: json(schema) });
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [String(status), { $ref: `#/components/responses/Error${status}` }]));
const pathId = (name: string, description: string) => ({ name, in: "path", required: true, schema: { type: "string" }, description });
const query = (name: string, schema: object, description: string) => ({ name, in: "query", required: false, schema, description });
const nullable = (type: string) => ({ type: [type, "null"] });
/** The `Idempotency-Key` header of the creates (an extension). */
const IDEMPOTENCY_KEY = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  schema: { type: "string", pattern: "^[\\x21-\\x7e]{1,255}$" },
  description: "batchspool's extension: the same key and request within 24 hours (per API key) get the first answer again, " +
    "with `idempotent-replayed: true`; the same key with another request is a 409.",
  "x-batchspool-extension": true,
};

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "The request is invalid; `error.param` names the field, a validation error its line.",
  401: "No valid API key (`Authorization: Bearer <key>`).",
  404: "No such object for this key.",
  408: "The client sent nothing for the idle timeout during an upload.",
  409: "The batch cannot be cancelled in its state; an `Idempotency-Key` was used with another request.",
  413: "The upload or body is over its limit.",
  403: "A server without API keys refuses this host name (DNS rebinding) or a change from another site.",
  415: "The body is not of an accepted media type.",
  429: "This API key holds as many event streams open as the server allows (`--max-event-streams`).",
  503: "The server is starting or stopping.",
};

/** The OpenAPI document (a JSON value). */
export const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "batchspool",
    version: "1",
    description: "OpenAI's Files and Batches APIs in front of any OpenAI-compatible endpoint, durable and resumable. " +
      "Routes marked `x-batchspool-extension` are not part of OpenAI's API.",
    license: { name: "MIT", identifier: "MIT" },
  },
  servers: [{ url: "/" }],
  security: [{ apiKey: [] }],
  paths: {
    "/health": {
      get: {
        operationId: "health",
        summary: "Whether the server has recovered and accepts work",
        security: [],
        responses: {
          "200": ok("Ready.", {
            type: "object",
            properties: {
              status: { const: "ok" },
              node_id: { type: "string", description: "The node that answered." },
              upstreams: {
                type: "array",
                "x-batchspool-extension": true,
                description: "Each upstream as the answering node sees it (no URL: this route is public).",
                items: {
                  type: "object",
                  properties: {
                    upstream: { type: "string", description: "The route's model pattern (`*`: the default route), or `default` for a single upstream." },
                    limit: { type: "integer", description: "Requests it may have in flight now (adapted to its answers)." },
                    in_flight: { type: "integer" },
                    replicas: { type: "integer", description: "With routes: its replicas." },
                    replicas_out: { type: "integer", description: "With routes: replicas taken out by their circuit breakers." },
                  },
                  required: ["upstream", "limit", "in_flight"],
                },
              },
            },
            required: ["status", "node_id"],
          }),
          "503": ok("Starting or stopping.", { type: "object", properties: { status: { const: "starting" }, node_id: { type: "string" } } }),
        },
      },
    },
    "/metrics": {
      get: {
        operationId: "metrics",
        summary: "Prometheus metrics (text format); names no tenant's data",
        security: [],
        "x-batchspool-extension": true,
        responses: { "200": { description: "Metrics.", content: { "text/plain": { schema: { type: "string" } } } } },
      },
    },
    "/openapi.json": {
      get: {
        operationId: "openapi",
        summary: "This document",
        security: [],
        "x-batchspool-extension": true,
        responses: { "200": ok("The OpenAPI document.", { type: "object" }) },
      },
    },
    "/cluster": {
      get: {
        operationId: "cluster",
        summary: "The nodes on this storage (one, or several on one database), their work and heartbeats; keep it private",
        security: [],
        "x-batchspool-extension": true,
        responses: {
          "200": ok("The cluster as the answering node sees it.", {
            type: "object",
            required: ["object", "node_id", "lease_seconds", "nodes", "batches", "upstreams"],
            properties: {
              object: { const: "cluster" },
              node_id: { type: "string" },
              lease_seconds: { ...nullable("number"), description: "How long a claim outlives its node's last heartbeat; null where claims do not lapse (one node on its own storage)." },
              nodes: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    node_id: { type: "string" },
                    host: { type: "string" },
                    pid: { type: "integer" },
                    started_at: { type: "string", format: "date-time" },
                    last_heartbeat_at: { type: "string", format: "date-time" },
                    seconds_since_heartbeat: { type: "number" },
                    work: {
                      type: "array",
                      items: {
                        type: "object",
                        properties: {
                          batch_id: { type: "string" },
                          kind: { enum: ["validate", "slice", "finalize"] },
                          item: { type: "integer" },
                          first_line: { type: "integer" },
                          lines: { type: "integer" },
                          lease_seconds_left: { type: "number" },
                        },
                      },
                    },
                  },
                },
              },
              batches: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    batch_id: { type: "string" },
                    stop: nullable("string"),
                    slices: { type: "integer" },
                    slices_left: nullable("integer"),
                  },
                },
              },
              upstreams: {
                type: "array",
                description: "Each upstream (route) as the answering node sees it: its adaptive limit on requests in flight and its replicas' circuit breakers.",
                items: {
                  type: "object",
                  properties: {
                    upstream: { type: "string", description: "The route's model pattern (`*`: the default route), or `default` for a single upstream." },
                    in_flight: { type: "integer" },
                    limit: { type: "integer", description: "Requests allowed in flight now: lowered on 429/503 and rising latency, raised back on successes." },
                    max_limit: { type: "integer" },
                    replicas: {
                      type: "array",
                      items: {
                        type: "object",
                        properties: {
                          url: { type: "string" },
                          breaker: { enum: ["closed", "open", "half-open"] },
                          in_flight: { type: "integer" },
                          failures_in_a_row: { type: "integer" },
                          retry_in_ms: nullable("integer"),
                        },
                      },
                    },
                  },
                },
              },
            },
          }),
        },
      },
    },
    "/docs": {
      get: {
        operationId: "docsPage",
        summary: "An interactive reference of this document (Swagger UI), served without any CDN",
        security: [],
        "x-batchspool-extension": true,
        responses: { "200": { description: "The page.", content: { "text/html": { schema: { type: "string" } } } } },
      },
    },
    "/docs/assets/swagger-ui-dist/{name}": {
      get: {
        operationId: "docsAsset",
        summary: "A script or style sheet of the /docs page",
        security: [],
        "x-batchspool-extension": true,
        parameters: [{ name: "name", in: "path", required: true, schema: { enum: ["swagger-ui.css", "swagger-ui-bundle.js"] } }],
        responses: {
          "200": {
            description: "The asset.",
            content: { "text/css": { schema: { type: "string" } }, "text/javascript": { schema: { type: "string" } } },
          },
          ...errors(404),
        },
      },
    },
    "/v1/files": {
      post: {
        operationId: "createFile",
        summary: "Upload a file (a batch input is validated as it arrives)",
        parameters: [IDEMPOTENCY_KEY],
        requestBody: {
          required: true,
          content: {
            "multipart/form-data": {
              schema: {
                type: "object",
                required: ["file", "purpose"],
                properties: {
                  file: { type: "string", contentMediaType: "application/octet-stream" },
                  purpose: ref("FilePurpose"),
                  "expires_after[anchor]": { const: "created_at" },
                  "expires_after[seconds]": { type: "integer", minimum: 3600, maximum: 2592000 },
                },
              },
            },
          },
        },
        responses: { "200": ok("The stored file.", ref("File")), ...errors(400, 401, 408, 409, 413, 415, 503) },
      },
      get: {
        operationId: "listFiles",
        summary: "List the key's files",
        parameters: [
          query("purpose", ref("FilePurpose"), "Only files of this purpose."),
          query("limit", { type: "integer", minimum: 1, maximum: 10000, default: 10000 }, "Page size."),
          query("order", { enum: ["asc", "desc"], default: "desc" }, "By creation time."),
          query("after", { type: "string" }, "The last id of the previous page."),
        ],
        responses: { "200": ok("A page of files.", listOf("File")), ...errors(400, 401, 503) },
      },
    },
    "/v1/files/{file_id}": {
      get: {
        operationId: "retrieveFile",
        summary: "A file's object",
        parameters: [pathId("file_id", "The file.")],
        responses: { "200": ok("The file.", ref("File")), ...errors(401, 404, 503) },
      },
      delete: {
        operationId: "deleteFile",
        summary: "Delete a file (a running batch keeps its input's bytes until it ends)",
        parameters: [pathId("file_id", "The file.")],
        responses: {
          "200": ok("Deleted.", {
            type: "object",
            required: ["id", "object", "deleted"],
            properties: { id: { type: "string" }, object: { const: "file" }, deleted: { type: "boolean" } },
          }),
          ...errors(401, 404, 503),
        },
      },
    },
    "/v1/files/{file_id}/content": {
      get: {
        operationId: "downloadFile",
        summary: "A file's bytes, verified against their SHA-256 as they stream (cut short on a mismatch)",
        parameters: [pathId("file_id", "The file.")],
        responses: {
          "200": { description: "The bytes.", content: { "application/octet-stream": { schema: { type: "string" } } } },
          ...errors(401, 404, 503),
        },
      },
    },
    "/v1/batches": {
      post: {
        operationId: "createBatch",
        summary: "Create a batch from an uploaded input",
        parameters: [IDEMPOTENCY_KEY],
        requestBody: {
          required: true,
          content: json({
            type: "object",
            required: ["input_file_id", "endpoint", "completion_window"],
            properties: {
              input_file_id: { type: "string" },
              endpoint: {
                type: "string",
                examples: ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations", "/v1/messages"],
                description: "OpenAI's endpoints, and as extensions `/v1/messages` (Anthropic's Messages API: sent as written, " +
                  "or translated to chat completions for an upstream without it; see `--messages-upstream`) and any `/v1/…` " +
                  "endpoint the operator allows with `--endpoint` (e.g. `/v1/rerank`, `/v1/score`), whose lines are forwarded as " +
                  "written. Another is a 400 naming the endpoints allowed.",
                "x-batchspool-extension": ["/v1/messages", "--endpoint"],
              },
              completion_window: { type: "string", description: "`24h`, or as an extension `<n>s|m|h` of at least 1 s." },
              metadata: { type: "object", additionalProperties: { type: "string", maxLength: 512 }, maxProperties: 16 },
              output_expires_after: {
                type: "object",
                properties: { anchor: { const: "created_at" }, seconds: { type: "integer" } },
              },
              priority: {
                type: "integer",
                minimum: -1_000_000,
                maximum: 1_000_000,
                default: 0,
                description: "Higher goes first: a batch's lines go before those of lower priority on every node; equal priorities " +
                  "share (owners by weight, see `--key-weights`). Also accepted as `metadata.priority` (a string), so the unchanged " +
                  "SDKs can set it.",
                "x-batchspool-extension": true,
              },
              max_concurrency: {
                type: "integer",
                minimum: 1,
                maximum: 100_000,
                description: "Most of this batch's requests in flight at once, across every node (such a batch runs on one node at " +
                  "a time). Also accepted as `metadata.max_concurrency`.",
                "x-batchspool-extension": true,
              },
            },
          }),
        },
        responses: { "200": ok("The batch.", ref("Batch")), ...errors(400, 401, 404, 409, 413, 415, 503) },
      },
      get: {
        operationId: "listBatches",
        summary: "List the key's batches, newest first",
        parameters: [
          query("limit", { type: "integer", minimum: 1, maximum: 100, default: 20 }, "Page size."),
          query("after", { type: "string" }, "The last id of the previous page."),
        ],
        responses: { "200": ok("A page of batches.", listOf("Batch")), ...errors(400, 401, 503) },
      },
    },
    "/v1/batches/{batch_id}": {
      get: {
        operationId: "retrieveBatch",
        summary: "A batch, with live counts while it runs",
        parameters: [pathId("batch_id", "The batch.")],
        responses: { "200": ok("The batch.", ref("Batch")), ...errors(401, 404, 503) },
      },
    },
    "/v1/batches/{batch_id}/cancel": {
      post: {
        operationId: "cancelBatch",
        summary: "Cancel a batch; results so far are kept as files",
        parameters: [pathId("batch_id", "The batch.")],
        responses: { "200": ok("The batch, cancelling.", ref("Batch")), ...errors(401, 404, 409, 503) },
      },
    },
    "/v1/batches/{batch_id}/results": {
      get: {
        operationId: "batchResultsSoFar",
        summary: "The results recorded so far, while the batch runs and after: JSONL records as in its output and error files, " +
          "each once across reads that pass on `batchspool-next` as `after`, in an order the same `after` gives again",
        parameters: [
          pathId("batch_id", "The batch."),
          query("after", { type: "string" }, "The `batchspool-next` of the previous read (none: from the first result)."),
        ],
        responses: {
          "200": {
            description: "The records since `after`.",
            headers: {
              "batchspool-next": { schema: { type: "string" }, description: "Where the next read starts (pass it as `after`)." },
              "batchspool-complete": { schema: { type: "string", enum: ["true", "false"] }, description: "`true`: the batch had ended before this read; nothing follows." },
            },
            content: { "application/jsonl": { schema: { type: "string" } } },
          },
          ...errors(400, 401, 404, 503),
        },
        "x-batchspool-extension": true,
      },
    },
    "/v1/batches/{batch_id}/pause": {
      post: {
        operationId: "pauseBatch",
        summary: "Pause a batch: nothing more is sent (requests in flight finish); results are kept; it stays paused across " +
          "restarts; its completion window keeps running, so it can expire while paused",
        parameters: [pathId("batch_id", "The batch.")],
        responses: { "200": ok("The batch, with `paused_at` set.", ref("Batch")), ...errors(401, 404, 409, 503) },
        "x-batchspool-extension": true,
      },
    },
    "/v1/batches/{batch_id}/resume": {
      post: {
        operationId: "resumeBatch",
        summary: "Resume a paused batch",
        parameters: [pathId("batch_id", "The batch.")],
        responses: { "200": ok("The batch, with `paused_at` null.", ref("Batch")), ...errors(401, 404, 503) },
        "x-batchspool-extension": true,
      },
    },
    "/v1/batches/{batch_id}/events": {
      get: {
        operationId: "batchEvents",
        summary: "The batch as Server-Sent Events while it changes, ending with its final status",
        "x-batchspool-extension": true,
        parameters: [
          pathId("batch_id", "The batch."),
          { name: "Last-Event-ID", in: "header", required: false, schema: { type: "string" }, description: "Ignored: a reconnect gets the current state at once." },
        ],
        responses: {
          "200": {
            description: "`event: batch` with the batch object as `data`, at most four a second; `: keep-alive` comments every 5 s.",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          ...errors(401, 404, 429, 503),
        },
      },
    },
    ...messageBatchPaths(IDEMPOTENCY_KEY),
  },
  components: {
    securitySchemes: {
      apiKey: { type: "http", scheme: "bearer", description: "One of the server's API keys (none needed when it has none); Anthropic's routes also take it as `x-api-key`." },
    },
    responses: Object.fromEntries(
      Object.entries(ERROR_DESCRIPTIONS).map(([status, description]) => [`Error${status}`, ok(description, ref("Error"))]),
    ),
    schemas: {
      ...MESSAGE_BATCH_SCHEMAS,
      Error: {
        type: "object",
        required: ["error"],
        properties: {
          error: {
            type: "object",
            required: ["message", "type", "param", "code"],
            properties: {
              message: { type: "string" },
              type: { type: "string" },
              param: nullable("string"),
              code: nullable("string"),
              line: { type: "integer", description: "The 1-based input line, for a validation error." },
            },
          },
        },
      },
      FilePurpose: { enum: [...UPLOAD_PURPOSES, "batch_output"] },
      File: {
        type: "object",
        required: ["id", "object", "bytes", "created_at", "filename", "purpose", "status", "expires_at"],
        properties: {
          id: { type: "string" },
          object: { const: "file" },
          bytes: { type: "integer" },
          created_at: { type: "integer" },
          filename: { type: "string" },
          purpose: ref("FilePurpose"),
          status: { enum: ["uploaded", "processed", "error"] },
          status_details: nullable("string"),
          expires_at: nullable("integer"),
        },
      },
      BatchStatus: { enum: ["validating", "failed", "in_progress", "finalizing", "completed", "expired", "cancelling", "cancelled"] },
      Batch: {
        type: "object",
        required: ["id", "object", "endpoint", "input_file_id", "completion_window", "status", "created_at", "request_counts"],
        properties: {
          id: { type: "string" },
          object: { const: "batch" },
          endpoint: { type: "string" },
          model: nullable("string"),
          input_file_id: { type: "string" },
          completion_window: { type: "string" },
          status: ref("BatchStatus"),
          output_file_id: nullable("string"),
          error_file_id: nullable("string"),
          metadata: { type: ["object", "null"], additionalProperties: { type: "string" } },
          errors: {
            type: ["object", "null"],
            properties: {
              object: { const: "list" },
              data: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    code: { type: "string" },
                    message: { type: "string" },
                    param: nullable("string"),
                    line: nullable("integer"),
                  },
                },
              },
            },
          },
          created_at: { type: "integer" },
          in_progress_at: nullable("integer"),
          expires_at: nullable("integer"),
          finalizing_at: nullable("integer"),
          completed_at: nullable("integer"),
          failed_at: nullable("integer"),
          expired_at: nullable("integer"),
          cancelling_at: nullable("integer"),
          cancelled_at: nullable("integer"),
          request_counts: {
            type: "object",
            required: ["total", "completed", "failed"],
            properties: { total: { type: "integer" }, completed: { type: "integer" }, failed: { type: "integer" } },
          },
          usage: { type: ["object", "null"] },
          priority: { type: "integer", description: "Higher goes first.", "x-batchspool-extension": true },
          max_concurrency: { ...nullable("integer"), description: "Its own limit on requests in flight.", "x-batchspool-extension": true },
          paused_at: { ...nullable("integer"), description: "When it was paused (null: it runs).", "x-batchspool-extension": true },
        },
      },
    },
  },
} as const;

function listOf(schema: string) {
  return {
    type: "object",
    required: ["object", "data", "has_more"],
    properties: {
      object: { const: "list" },
      data: { type: "array", items: ref(schema) },
      first_id: nullable("string"),
      last_id: nullable("string"),
      has_more: { type: "boolean" },
    },
  };
}
