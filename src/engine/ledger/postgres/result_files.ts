/**
 * A finished batch's output and error files, served from the results table
 * where its nodes recorded them: its records of one kind in line order, each
 * checked against the SHA-256 recorded with it before it is given out, and the
 * whole against the size the file was recorded with. Nothing is copied when a
 * batch ends.
 *
 * @module
 */
import type postgres from "postgres";
import { IntegrityError } from "../../../integrity/envelope.ts";
import { sha256Hex } from "../../../integrity/sha256.ts";
import { query } from "../../../storage/postgres/shared.ts";
import type { FileContentRef } from "../../../batch/model/objects.ts";
import type { ResultFileStore } from "../ledger.ts";
import type { ClusterReads } from "./cluster_reads.ts";

const encoder = new TextEncoder();

/** The batch and kind a results file's key names (`batches/<id>/output` or `…/errors`). */
function parseKey(content: FileContentRef): { batchId: string; isError: boolean } {
  const match = /^batches\/([^/]+)\/(output|errors)$/.exec(content.key);
  if (content.store !== "results" || !match) throw new IntegrityError(`not a results file: ${content.store} ${content.key}`);
  return { batchId: match[1], isError: match[2] === "errors" };
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");

/** The results table's files. */
export function resultFileStore(reads: ClusterReads, sql: postgres.Sql): ResultFileStore {
  return {
    async read(content, bytes) {
      const { batchId, isError } = parseKey(content);
      const groups = reads.results(batchId, isError);
      let served = 0;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { done, value } = await groups.next();
          if (done) {
            if (served !== bytes) throw new IntegrityError(`results file ${content.key} holds ${served} bytes, not ${bytes} as recorded`);
            return controller.close();
          }
          for (const { record, digest } of value) {
            // Rows recorded before their digests were (schema version 2) have none to check.
            if (digest && sha256Hex(record) !== hex(digest)) {
              throw new IntegrityError(`a record of results file ${content.key} differs from what was recorded`);
            }
          }
          const chunk = encoder.encode(value.map((row) => row.record).join("\n") + "\n");
          served += chunk.length;
          controller.enqueue(chunk);
        },
        async cancel() {
          await groups.return(undefined);
        },
      }, { highWaterMark: 0 });
    },

    async delete(content) {
      const { batchId, isError } = parseKey(content);
      await query("delete a results file", batchId, async () => {
        await sql`delete from cluster_results where batch_id = ${batchId} and is_error = ${isError}`;
      });
    },
  };
}
