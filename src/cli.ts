#!/usr/bin/env node
/**
 * The batchspool command line: `serve`, plus client commands that speak only
 * the public HTTP API.
 *
 * Runs unchanged as `deno run -A src/cli.ts`, `bun src/cli.ts` and, after
 * `npm run build`, `node dist/cli.js`.
 *
 * @module
 */
import process from "node:process";
import { CLIENT_USAGE, runClientCommand } from "./client/commands.ts";
import { ConfigError, readServeConfig, runServe, SERVE_USAGE } from "./serve_command.ts";

const USAGE = `Usage: batchspool <command> [options]

Commands:
  serve                 run the Batch API server
  submit <file.jsonl>   upload a file and create a batch (--wait to follow it and download results)
  status <batch_id>     show a batch
  cancel <batch_id>     cancel a batch
  pause <batch_id>      pause a batch (nothing more is sent until it is resumed)
  resume <batch_id>     resume a paused batch
  list                  list batches, newest first
  download <batch_id>   download a batch's output and error files
  retry <batch_id>      a new batch of the lines that failed (--wait to follow it)

Client commands talk to --base-url (or OPENAI_BASE_URL, default http://127.0.0.1:8787/v1)
with --api-key (or OPENAI_API_KEY): batchspool, OpenAI, or any compatible server.
Run "batchspool <command> --help" for a command's options.

Exit codes: 0 ok; 1 the batch ended failed, expired or cancelled; 2 usage error;
3 server unreachable; 4 request refused (4xx); 5 server error (5xx); 130 interrupted.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  if (command === "serve") {
    if (rest.includes("--help") || rest.includes("-h")) {
      console.log(SERVE_USAGE);
      return 0;
    }
    try {
      await runServe(readServeConfig(rest, process.env));
      // Everything is written and closed; a connection the runtime still holds (Deno keeps one whose
      // request was answered before its body ended) must not keep the process alive.
      process.exit(process.exitCode ?? 0);
    } catch (error) {
      if (error instanceof ConfigError) {
        console.error(`batchspool serve: ${error.message}\n\n${SERVE_USAGE}`);
        return 2;
      }
      console.error(`batchspool serve: ${(error as Error).message}`);
      return 1;
    }
  }
  if (command in CLIENT_USAGE) return await runClientCommand(command, rest);
  console.error(`batchspool: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
