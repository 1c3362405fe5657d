/**
 * The usage text of each client command of the CLI.
 *
 * @module
 */

/** Usage of each client command. */
export const CLIENT_USAGE: Record<string, string> = {
  submit: `Usage: batchspool submit <file.jsonl> [options]

Uploads a JSONL file of requests and creates a batch: OpenAI's request lines
({custom_id, method, url, body}), or Anthropic's batch requests ({custom_id,
params}) as a message batch.

Options:
  --format <f>         openai or anthropic (default: what the file's first line is)
  --endpoint <path>    endpoint of every line (default /v1/chat/completions)
  --window <dur>       completion window (default 24h)
  --metadata <k=v>     metadata pair; repeatable
  --wait               show progress until the batch ends, then download its files
  --out <file>         with --wait: where the output file goes (default <batch_id>_output.jsonl;
                       a message batch's results: <msgbatch_id>_results.jsonl)
  --errors <file>      with --wait: where the error file goes (default <batch_id>_errors.jsonl)
  --base-url <url>     API base URL including /v1 (env OPENAI_BASE_URL; default http://127.0.0.1:8787/v1)
  --api-key <key>      API key (env OPENAI_API_KEY)
`,
  status: `Usage: batchspool status <batch_id|msgbatch_id> [--json] [--base-url <url>] [--api-key <key>]

Shows a batch's (or an Anthropic message batch's) status and counts (--json: the whole object).
`,
  cancel: `Usage: batchspool cancel <batch_id|msgbatch_id> [--base-url <url>] [--api-key <key>]

Asks the server to cancel a batch (or an Anthropic message batch); finished results are kept.
`,
  pause: `Usage: batchspool pause <batch_id> [--base-url <url>] [--api-key <key>]

Pauses a batch (a batchspool extension): nothing more is sent (requests in flight finish), its
results are kept, it stays paused across restarts, and its completion window keeps running.
`,
  resume: `Usage: batchspool resume <batch_id> [--base-url <url>] [--api-key <key>]

Resumes a paused batch (a batchspool extension).
`,
  list: `Usage: batchspool list [--limit <n>] [--base-url <url>] [--api-key <key>]

Lists batches, newest first (default limit 20).
`,
  retry: `Usage: batchspool retry <batch_id> [options]

Creates a batch of the lines of a finished batch that failed (those in its error file), with the
same endpoint, completion window and metadata, plus retry_of=<batch_id>. Lines that failed
validation never ran and cannot be retried: fix the input and submit it again.

Options:
  --wait               show progress until the new batch ends, then download its files
  --out <file>         with --wait: where the output file goes (default <batch_id>_output.jsonl;
                       a message batch's results: <msgbatch_id>_results.jsonl)
  --errors <file>      with --wait: where the error file goes (default <batch_id>_errors.jsonl)
  --base-url <url>     API base URL including /v1 (env OPENAI_BASE_URL; default http://127.0.0.1:8787/v1)
  --api-key <key>      API key (env OPENAI_API_KEY)
`,
  download: `Usage: batchspool download <batch_id> [--out <file>] [--errors <file>] [--follow] [--base-url <url>] [--api-key <key>]

Downloads a finished batch's output and error files. With --follow (a batchspool extension), writes
its results to --out (default <batch_id>_results.jsonl) as they are recorded, output and error
records in one file, each once, until the batch ends; exits 1 unless it completed.
`,
};
