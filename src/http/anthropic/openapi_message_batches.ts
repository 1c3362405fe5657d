/**
 * The OpenAPI description of Anthropic's Message Batches routes, merged into
 * the document of `openapi.ts`: their paths, the Message Batch object, and
 * errors in Anthropic's envelope. The whole API is batchspool's extension of
 * an OpenAI-shaped server, so every route is marked as one.
 *
 * @module
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ "application/json": { schema } });
const ok = (description: string, schema: object) => ({ description, content: json(schema) });
const nullable = (type: string) => ({ type: [type, "null"] });
const batchId = { name: "message_batch_id", in: "path", required: true, schema: { type: "string" }, description: "The message batch (`msgbatch_…`)." };
/** batchspool's scheduling extensions, as headers (Anthropic's create body has no room for them). */
const scheduleHeaders = [
  {
    name: "batchspool-priority",
    in: "header",
    required: false,
    schema: { type: "integer", minimum: -1_000_000, maximum: 1_000_000, default: 0 },
    description: "batchspool's extension: higher goes first (as `priority` of `POST /v1/batches`). From the SDK: `{ headers: { 'batchspool-priority': '5' } }`.",
    "x-batchspool-extension": true,
  },
  {
    name: "batchspool-max-concurrency",
    in: "header",
    required: false,
    schema: { type: "integer", minimum: 1, maximum: 100_000 },
    description: "batchspool's extension: most of the batch's requests in flight at once (as `max_concurrency` of `POST /v1/batches`).",
    "x-batchspool-extension": true,
  },
];

const beta = { name: "beta", in: "query", required: false, schema: { type: "string" }, description: "Sent by the SDKs' beta namespace; ignored." };

/** Errors in Anthropic's envelope, by status. */
const errors = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((status) => [String(status), ok(ANTHROPIC_ERRORS[status], ref("AnthropicError"))]));

const ANTHROPIC_ERRORS: Record<number, string> = {
  400: "`invalid_request_error`: the message says which field (`requests.3.custom_id`).",
  401: "`authentication_error`: no valid API key (`x-api-key`, or `Authorization: Bearer`).",
  404: "`not_found_error`: no such message batch for this key (or its results before it ended).",
  409: "`conflict_error`: a message batch that has not ended cannot be deleted; an `Idempotency-Key` used with other requests.",
  413: "`request_too_large`: the body is over 256 MB.",
  415: "`invalid_request_error`: the body is not JSON.",
  503: "`api_error`: the server is starting or stopping.",
};

const extension = { "x-batchspool-extension": true, tags: ["Anthropic Message Batches"] };

/** The paths of `/v1/messages/batches`, with the document's `Idempotency-Key` parameter. */
export const messageBatchPaths = (idempotencyKey: object) => ({
  "/v1/messages/batches": {
    post: {
      ...extension,
      operationId: "createMessageBatch",
      summary: "Create a message batch from inline requests (Anthropic's API); the body is streamed to storage as it arrives",
      parameters: [beta, idempotencyKey, ...scheduleHeaders],
      requestBody: {
        required: true,
        content: json({
          type: "object",
          required: ["requests"],
          properties: {
            requests: {
              type: "array",
              minItems: 1,
              maxItems: 100_000,
              items: {
                type: "object",
                required: ["custom_id", "params"],
                properties: {
                  custom_id: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,64}$" },
                  params: { type: "object", description: "Messages API parameters, sent as written (or translated; see `--messages-upstream`); `stream` may not be true." },
                },
              },
            },
          },
        }),
      },
      responses: { "200": ok("The message batch.", ref("MessageBatch")), ...errors(400, 401, 409, 413, 415, 503) },
    },
    get: {
      ...extension,
      operationId: "listMessageBatches",
      summary: "This key's message batches, newest first",
      parameters: [
        { name: "limit", in: "query", required: false, schema: { type: "integer", minimum: 1, maximum: 1000, default: 20 } },
        { name: "after_id", in: "query", required: false, schema: { type: "string" }, description: "The page after (older than) this batch." },
        { name: "before_id", in: "query", required: false, schema: { type: "string" }, description: "The page before (newer than) this batch." },
        beta,
      ],
      responses: {
        "200": ok("A page.", {
          type: "object",
          required: ["data", "has_more", "first_id", "last_id"],
          properties: { data: { type: "array", items: ref("MessageBatch") }, has_more: { type: "boolean" }, first_id: nullable("string"), last_id: nullable("string") },
        }),
        ...errors(400, 401, 503),
      },
    },
  },
  "/v1/messages/batches/{message_batch_id}": {
    get: {
      ...extension,
      operationId: "retrieveMessageBatch",
      summary: "A message batch, with live counts",
      parameters: [batchId, beta],
      responses: { "200": ok("The message batch.", ref("MessageBatch")), ...errors(401, 404, 503) },
    },
    delete: {
      ...extension,
      operationId: "deleteMessageBatch",
      summary: "Delete a message batch that has ended, with its results",
      parameters: [batchId, beta],
      responses: {
        "200": ok("Deleted.", { type: "object", required: ["id", "type"], properties: { id: { type: "string" }, type: { const: "message_batch_deleted" } } }),
        ...errors(401, 404, 409, 503),
      },
    },
  },
  "/v1/messages/batches/{message_batch_id}/cancel": {
    post: {
      ...extension,
      operationId: "cancelMessageBatch",
      summary: "Cancel a message batch: requests not yet sent end as `canceled`, results so far are kept",
      parameters: [batchId, beta],
      responses: { "200": ok("The message batch (as it is, if it had ended).", ref("MessageBatch")), ...errors(401, 404, 503) },
    },
  },
  "/v1/messages/batches/{message_batch_id}/results": {
    get: {
      ...extension,
      operationId: "messageBatchResults",
      summary: "Every request's result, one JSON object per line (once the batch has ended)",
      parameters: [batchId, beta],
      responses: {
        "200": {
          description: "`{\"custom_id\", \"result\": {\"type\": \"succeeded\" | \"errored\" | \"canceled\" | \"expired\", …}}` per line.",
          content: { "application/x-jsonl": { schema: { type: "string" } } },
        },
        ...errors(401, 404, 503),
      },
    },
  },
});

/** The schemas those paths name. */
export const MESSAGE_BATCH_SCHEMAS = {
  MessageBatch: {
    type: "object",
    required: ["id", "type", "processing_status", "request_counts", "created_at", "expires_at", "ended_at", "archived_at", "cancel_initiated_at", "results_url"],
    properties: {
      id: { type: "string" },
      type: { const: "message_batch" },
      processing_status: { enum: ["in_progress", "canceling", "ended"] },
      request_counts: {
        type: "object",
        properties: Object.fromEntries(["processing", "succeeded", "errored", "canceled", "expired"].map((name) => [name, { type: "integer" }])),
      },
      created_at: { type: "string", format: "date-time" },
      expires_at: { type: "string", format: "date-time" },
      ended_at: { ...nullable("string"), format: "date-time" },
      archived_at: { ...nullable("string"), format: "date-time" },
      cancel_initiated_at: { ...nullable("string"), format: "date-time" },
      results_url: { ...nullable("string"), description: "Absolute URL of the results once the batch has ended." },
    },
  },
  AnthropicError: {
    type: "object",
    required: ["type", "error"],
    properties: {
      type: { const: "error" },
      error: { type: "object", required: ["type", "message"], properties: { type: { type: "string" }, message: { type: "string" } } },
      request_id: { type: "string", description: "Also sent as the `request-id` header." },
    },
  },
};
