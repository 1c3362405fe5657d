/**
 * The usage text of `batchspool serve`: every option, its environment
 * variable and its default.
 *
 * @module
 */

/** The `serve` usage text. */
export const SERVE_USAGE = `Usage: batchspool serve [options]

Serves the OpenAI Files and Batches APIs, running batches against an upstream.

Options (each also read from the environment variable shown):
  --host <addr>            BATCHSPOOL_HOST           address to bind (default 127.0.0.1)
  --port <n>               BATCHSPOOL_PORT           port (default 8787; 0 picks a free port)
  --data <dir>             BATCHSPOOL_DATA           data directory (default ./batchspool-data)
  --database <url>         BATCHSPOOL_DATABASE_URL   keep files, results and state in PostgreSQL instead
                                                     (postgres://user:password@host:port/database)
  --database-schema <name> BATCHSPOOL_DATABASE_SCHEMA  the schema of batchspool's tables (default batchspool)
  --node-id <name>         BATCHSPOOL_NODE_ID        with --database: this node's name in the cluster
                                                     (default: host name and a random suffix)
  --lease-seconds <s>      BATCHSPOOL_LEASE_SECONDS  with --database: how long a node's claim on a slice of
                                                     work outlives its last heartbeat (default 15)
  --slice-lines <n>        BATCHSPOOL_SLICE_LINES    with --database: least lines of a batch's largest slices
                                                     (slices start up to 8 times it, end at it; default 256)
  --upstream [<model>=]<url>  BATCHSPOOL_UPSTREAM    OpenAI-style base URL including /v1, as OPENAI_BASE_URL
                                                     ("mock": the built-in mock target); repeatable: a
                                                     model pattern (glob, first match wins) routes those
                                                     models there, one without is the default, the same
                                                     pattern again adds a replica (env: space-separated)
  --routes-file <path>     BATCHSPOOL_ROUTES_FILE    upstreams in JSON or YAML, each with its own api_key,
                                                     concurrency, rpm, tpm, timeout_seconds (see README)
  --upstream-key <key>     BATCHSPOOL_UPSTREAM_KEY   key sent upstream (else OPENAI_API_KEY)
  --messages-upstream <m>  BATCHSPOOL_MESSAGES_UPSTREAM  how /v1/messages lines reach the upstream: native
                                                     (as they are), translate (as chat completions), or
                                                     auto (native if the upstream serves it; default)
  --api-key <key>          BATCHSPOOL_API_KEYS       accepted client key; repeatable (env: comma-separated)
  --key-weights <k=w,…>    BATCHSPOOL_KEY_WEIGHTS    each API key's share of the upstream relative to the others'
                                                     (default 1 each), e.g. "sk-team-a=3,sk-team-b=1"
  --no-auth                BATCHSPOOL_NO_AUTH=1      allow a non-loopback host without API keys
  --max-event-streams <n>  BATCHSPOOL_MAX_EVENT_STREAMS  most /events streams one API key holds open
                                                     at once (default 32; more are refused 429)
  --admin-port <n>         BATCHSPOOL_ADMIN_PORT     serve /metrics and /cluster on this port only (0: any free
                                                     one); without it they are served beside the API on a
                                                     loopback host, and not at all on another
  --admin-host <addr>      BATCHSPOOL_ADMIN_HOST     address of that listener (default 127.0.0.1)
  --public-url <url>       BATCHSPOOL_PUBLIC_URL     the server's base URL as clients reach it (behind a proxy),
                                                     for the message batches' results_url (default: each
                                                     request's own)
  --allowed-hosts <names>  BATCHSPOOL_ALLOWED_HOSTS  without API keys: host names clients use besides
                                                     localhost and the bound address, comma-separated
                                                     ("*": any; others are refused, against DNS rebinding)
  --no-prefix-grouping     BATCHSPOOL_PREFIX_GROUPING=0  send lines in input order, not grouped by their
                                                     shared leading messages (system prompt, first turns)
  --concurrency <n>        BATCHSPOOL_CONCURRENCY    requests in flight upstream (default 32)
  --rpm <n>                BATCHSPOOL_RPM            requests-per-minute budget upstream
  --tpm <n>                BATCHSPOOL_TPM            tokens-per-minute budget upstream
  --endpoint <path>        BATCHSPOOL_ENDPOINTS      another endpoint batches may target (besides the built-in
                                                     chat/completions, completions, embeddings, responses,
                                                     moderations, messages), e.g. /v1/rerank; its lines are
                                                     forwarded as written; repeatable (env: comma-separated)
  --model-budget <rule>    BATCHSPOOL_MODEL_BUDGETS  a budget for each model matching a pattern, beside the
                                                     global ones, e.g. "gpt-*=rpm:500,tpm:200000"; repeatable
                                                     (env: ";"-separated; the first matching rule counts)
  --max-retries <n>        BATCHSPOOL_MAX_RETRIES    retries of 408/429/5xx/timeouts (default 5)
  --request-timeout <s>    BATCHSPOOL_REQUEST_TIMEOUT  seconds per upstream request (default 600)
  --max-response-mib <n>   BATCHSPOOL_MAX_RESPONSE_MIB  longest upstream answer read, in MiB; a longer one
                                                     fails its line as response_too_large (default 64)
  --checkpoint-interval <s> BATCHSPOOL_CHECKPOINT_INTERVAL seconds between checkpoints (default 5)
  --mock-latency <ms>      BATCHSPOOL_MOCK_LATENCY   latency of the mock target (default 0)
  --idle-timeout <s>       BATCHSPOOL_IDLE_TIMEOUT   a client that sends nothing for this long is dropped
                                                     (an upload: 408); a slow upload that keeps sending is
                                                     never cut (default 120)
  --lock-stale-after <s>   BATCHSPOOL_LOCK_STALE_AFTER  the data directory's lock is stale once not refreshed
                                                     for this long; a restart after a crash waits at most
                                                     this long for it (default 10)
  --webhook-url <url>      BATCHSPOOL_WEBHOOK_URL    where batch.completed/failed/expired/cancelled events are POSTed
                                                     (a server without API keys)
  --webhook-secret <whsec> BATCHSPOOL_WEBHOOK_SECRET  the Standard Webhooks secret (whsec_…) that signs them
  --webhooks-file <file>   BATCHSPOOL_WEBHOOKS_FILE  with API keys: each key's endpoint, as JSON
                                                     {"<api key>": {"url": "…", "secret": "whsec_…"}}
  --scan-worker            BATCHSPOOL_SCAN_WORKER=1  validate uploads on a worker thread (frees the main
                                                     thread; 13-50 MB more memory while an upload arrives;
                                                     the default on Deno)
  --no-scan-worker         BATCHSPOOL_SCAN_WORKER=0  validate uploads on the main thread (the default on
                                                     Node and Bun, where the worker measured no faster)
  -h, --help               show this help
`;
