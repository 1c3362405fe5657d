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
import { ConfigError, readServeConfig, runServe, SERVE_USAGE } from "./serve_command.ts";

const USAGE = `Usage: batchspool <command> [options]

Commands:
  serve        run the Batch API server (batchspool serve --help)

Run "batchspool <command> --help" for a command's options.
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
      return 0;
    } catch (error) {
      if (error instanceof ConfigError) {
        console.error(`batchspool serve: ${error.message}\n\n${SERVE_USAGE}`);
        return 2;
      }
      console.error(`batchspool serve: ${(error as Error).message}`);
      return 1;
    }
  }
  console.error(`batchspool: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  return 2;
}

process.exitCode = await main(process.argv.slice(2));
