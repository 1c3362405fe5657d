/**
 * A finished batch's output and error files, served from the results table
 * where its nodes recorded them: its records of one kind in line order, each
 * group checked against the SHA-256 recorded with it before any of it is
 * given out, and the whole against the size the file was recorded with.
 * Nothing is copied when a batch ends.
 *
 * Groups are ordered within themselves; those of one slice overlap (a slice's
 * lines finish in any order), so they are merged: a group is opened when the
 * lines before its first are given out, and memory holds the groups that
 * overlap where the file is, about one slice's results.
 *
 * A running batch's results so far are read from the same table, checked
 * the same way (`recordsSoFar`).
 *
 * @module
 */
import type postgres from "postgres";
import { IntegrityError } from "../../../integrity/envelope.ts";
import { sha256Hex } from "../../../integrity/sha256.ts";
import { iteratorStream } from "../../../shared/iterator_stream.ts";
import { query } from "../../../storage/postgres/shared.ts";
import type { FileContentRef } from "../../../batch/model/objects.ts";
import type { ResultFileStore } from "../ledger.ts";
import type { ClusterReads, StoredResultGroup } from "./cluster_reads.ts";

const encoder = new TextEncoder();

/** The batch and kind a results file's key names (`batches/<id>/output` or `…/errors`). */
function parseKey(content: FileContentRef): { batchId: string; isError: boolean } {
  const match = /^batches\/([^/]+)\/(output|errors)$/.exec(content.key);
  if (content.store !== "results" || !match) throw new IntegrityError(`not a results file: ${content.store} ${content.key}`);
  return { batchId: match[1], isError: match[2] === "errors" };
}

/** About how much text a read gives out at a time. */
const CHUNK_CHARS = 64 * 1024;

/** A group being given out: its lines, its records, and how many of them are out. */
interface OpenGroup {
  lines: number[];
  records: string[];
  at: number;
}

/** The smallest next line of the open groups. */
function headOf(open: readonly OpenGroup[]): number {
  let head = Infinity;
  for (const group of open) head = Math.min(head, group.lines[group.at]);
  return head;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");

/** The results table's files. */
export function resultFileStore(reads: ClusterReads, sql: postgres.Sql): ResultFileStore {
  return {
    async read(content, bytes) {
      const { batchId, isError } = parseKey(content);
      const pages = reads.resultGroups(batchId, isError);
      let page: StoredResultGroup[] = [];
      let more = true;
      /** The next group by first line, checked (null: none left). */
      const nextGroup = async (): Promise<OpenGroup | null> => {
        while (!page.length && more) {
          const { done, value } = await pages.next();
          if (done) more = false;
          else page = value;
        }
        const group = page.shift();
        if (!group) return null;
        // Groups recorded before schema version 3 have no digest to check.
        if (group.digest && sha256Hex(group.records) !== hex(group.digest)) {
          throw new IntegrityError(`a group of records of results file ${content.key} differs from what was recorded`);
        }
        return { lines: group.lines, records: group.records.split("\n"), at: 0 };
      };
      const open: OpenGroup[] = [];
      // Read at the first pull: a changed record cuts the download short, as in every store, after its headers.
      let coming: OpenGroup | null | undefined;
      let served = 0;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (coming === undefined) coming = await nextGroup();
          const out: string[] = [];
          let outBytes = 0;
          while (outBytes < CHUNK_CHARS) {
            // Open every group that may hold a line before the open ones' next.
            while (coming && (!open.length || coming.lines[0] < headOf(open))) {
              open.push(coming);
              coming = await nextGroup();
            }
            if (!open.length) break;
            let first = 0;
            for (let i = 1; i < open.length; i++) if (open[i].lines[open[i].at] < open[first].lines[open[first].at]) first = i;
            const group = open[first];
            const record = group.records[group.at++];
            out.push(record);
            outBytes += record.length + 1;
            if (group.at === group.lines.length) open.splice(first, 1);
          }
          if (!out.length) {
            if (served !== bytes) throw new IntegrityError(`results file ${content.key} holds ${served} bytes, not ${bytes} as recorded`);
            return controller.close();
          }
          const chunk = encoder.encode(out.join("\n") + "\n");
          served += chunk.length;
          controller.enqueue(chunk);
        },
        async cancel() {
          await pages.return(undefined);
        },
      }, { highWaterMark: 0 });
    },

    async delete(content) {
      const { batchId, isError } = parseKey(content);
      await query("delete a results file", batchId, async () => {
        await sql`delete from cluster_result_groups where batch_id = ${batchId} and is_error = ${isError}`;
      });
    },
  };
}

/** A running batch's result groups (`ClusterReads.recordedSince`) as JSONL, each checked against the SHA-256 recorded with it before any of it is given out. */
export function recordsSoFar(groups: AsyncGenerator<StoredResultGroup[]>, batchId: string): ReadableStream<Uint8Array> {
  return iteratorStream((async function* () {
    for await (const page of groups) {
      const text: string[] = [];
      for (const group of page) {
        if (group.digest && sha256Hex(group.records) !== hex(group.digest)) {
          throw new IntegrityError(`a group of results of batch ${batchId} differs from what was recorded`);
        }
        text.push(group.records, "\n");
      }
      yield encoder.encode(text.join(""));
    }
  })());
}
