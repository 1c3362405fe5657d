/**
 * What a node reads of the ledger's tables (no claim, no lock): the node
 * table, where work stands, stops, and the results.
 *
 * @module
 */
import type postgres from "postgres";
import type { BatchStatus } from "../../../batch/model/objects.ts";
import { query } from "../../../storage/postgres/shared.ts";
import type { BatchInWork, BatchStop, Halt, HeldItemView, LedgerOverview, NodeRow } from "../ledger.ts";

/** A recorded group of results of one kind: its lines ascending, its records joined by newlines in that order. */
export interface StoredResultGroup {
  firstLine: number;
  lines: number[];
  records: string;
  /** SHA-256 of `records` (null for results recorded before schema version 3). */
  digest: Uint8Array | null;
}

/** The cluster's tables, read. */
export class ClusterReads {
  constructor(readonly sql: postgres.Sql) {}

  /** The other nodes. */
  async nodes(): Promise<NodeRow[]> {
    const rows = await query("read the node table", undefined, () =>
      this.sql`select *, extract(epoch from now() - heartbeat_at)::float8 as silent from cluster_nodes order by node_id`);
    return rows.map((row) => ({
      nodeId: row.node_id,
      host: row.host,
      bootId: row.boot_id ?? undefined,
      pidNamespace: row.pid_namespace ?? undefined,
      pid: row.pid,
      startedAt: new Date(row.started_at).toISOString(),
      heartbeatAt: new Date(row.heartbeat_at).toISOString(),
      silentSeconds: row.silent,
    }));
  }

  /** When the batch was added (seconds ago, by the database's clock), or null when it is not in the cluster. */
  async batchAge(batchId: string): Promise<number | null> {
    const rows = await query("read a batch's age", batchId, () =>
      this.sql`select extract(epoch from now() - created_at)::float8 as age from cluster_batches where batch_id = ${batchId}`);
    return rows.length ? rows[0].age : null;
  }

  /** The lines of [first, first + count) that have a result. */
  async finishedLines(batchId: string, first: number, count: number): Promise<number[]> {
    const last = first + count - 1;
    const rows = await query("read finished lines", batchId, () =>
      this.sql`select l.line from cluster_result_groups g, unnest(g.lines) as l(line)
        where g.batch_id = ${batchId} and g.first_line <= ${last} and g.last_line >= ${first}
          and l.line between ${first} and ${last}`);
    return rows.map((row) => row.line as number);
  }

  /** The cluster's batches by status, as their work shows it, and the lines not yet finished. */
  async overview(): Promise<LedgerOverview> {
    const [row] = await query("read the cluster's overview", undefined, () =>
      this.sql`select
          count(*) filter (where b.slices_left is null and b.stop is null and not s.sliced)::int as validating,
          count(*) filter (where (b.slices_left > 0 or (b.slices_left is null and s.sliced)) and b.stop is null)::int as in_progress,
          count(*) filter (where b.slices_left = 0 and b.stop is null)::int as finalizing,
          count(*) filter (where b.stop = 'cancel')::int as cancelling,
          count(*) filter (where b.stop in ('expire', 'fail'))::int as ending,
          (select coalesce(sum(greatest(0, line_count - completed - failed)), 0)::int from cluster_work
            where kind = 'slice' and not done) as waiting
        from cluster_batches b
        cross join lateral (select exists (select 1 from cluster_work w where w.batch_id = b.batch_id and w.kind = 'slice') as sliced) s`);
    const batches: Partial<Record<BatchStatus, number>> = {};
    for (const status of ["validating", "in_progress", "finalizing", "cancelling"] as const) {
      if (row[status]) batches[status] = row[status];
    }
    // Expiring and failing batches still show `in_progress` until their finalizing ends them.
    if (row.ending) batches.in_progress = (batches.in_progress ?? 0) + row.ending;
    return { batches, linesWaiting: row.waiting };
  }


  /** The stop of each of these batches that must stop. */
  async stopsOf(batchIds: readonly string[]): Promise<Map<string, Halt>> {
    if (!batchIds.length) return new Map();
    const rows = await query("read stops", undefined, () =>
      this.sql`select batch_id, coalesce(stop, 'pause') as halt from cluster_batches
        where batch_id = any(${batchIds as string[]}::text[]) and (stop is not null or paused)`);
    return new Map(rows.map((row) => [row.batch_id as string, row.halt as Halt]));
  }

  /** A batch's stop, why it failed (null: none) and whether it is paused; undefined when the batch is not in the cluster. */
  async stopOf(batchId: string): Promise<BatchStop | undefined> {
    const rows = await query("read a stop", batchId, () =>
      this.sql`select stop, failure, paused from cluster_batches where batch_id = ${batchId}`);
    return rows.length ? { stop: rows[0].stop, failure: rows[0].failure, paused: rows[0].paused } : undefined;
  }

  /** Whether a file is the input of a batch that has not ended. */
  async isInputInUse(fileId: string): Promise<boolean> {
    const rows = await query("read inputs in use", undefined, () =>
      this.sql`select 1 from cluster_batches where input_file_id = ${fileId} limit 1`);
    return rows.length > 0;
  }

  /** A running batch's counts so far, summed over its slices, with each slice's usage. */
  async liveCounts(batchId: string): Promise<{ completed: number; failed: number; usages: unknown[] } | null> {
    const rows = await query("read live counts", batchId, () =>
      this.sql`select completed, failed, usage from cluster_work where batch_id = ${batchId} and kind = 'slice'`);
    if (!rows.length) return null;
    let completed = 0;
    let failed = 0;
    for (const row of rows) {
      completed += row.completed;
      failed += row.failed;
    }
    return { completed, failed, usages: rows.map((row) => row.usage).filter((usage) => usage !== null) };
  }

  /** The count and bytes (records and their newlines) of a batch's recorded results of each kind. */
  async resultSizes(batchId: string): Promise<{ output: { rows: number; bytes: number }; errors: { rows: number; bytes: number } }> {
    // A group's records are joined by newlines: its bytes in a file are theirs and one newline more.
    const rows = await query("count results", batchId, () =>
      this.sql`select is_error, coalesce(sum(cardinality(lines)), 0)::int as n, coalesce(sum(octet_length(records) + 1), 0)::float8 as bytes
        from cluster_result_groups where batch_id = ${batchId} group by is_error`);
    const sizes = { output: { rows: 0, bytes: 0 }, errors: { rows: 0, bytes: 0 } };
    for (const row of rows) sizes[row.is_error ? "errors" : "output"] = { rows: row.n, bytes: Number(row.bytes) };
    return sizes;
  }

  /** A batch's result groups of one kind by first line, with their digests, a page at a time. */
  async *resultGroups(batchId: string, isError: boolean): AsyncGenerator<StoredResultGroup[]> {
    let after = -1;
    for (;;) {
      const rows = await query("read results", batchId, () =>
        this.sql`select first_line, lines, records, digest from cluster_result_groups
          where batch_id = ${batchId} and is_error = ${isError} and first_line > ${after}
          order by first_line limit 16`);
      if (!rows.length) return;
      after = rows[rows.length - 1].first_line;
      yield rows.map((row) => ({
        firstLine: row.first_line as number,
        lines: row.lines as number[],
        records: row.records as string,
        digest: row.digest as Uint8Array | null,
      }));
    }
  }

  /**
   * A batch's result groups recorded by transactions from `after` on that
   * have all ended, in the order they were recorded, and where the next read
   * starts: no transaction older than that can still record any.
   */
  async recordedSince(batchId: string, after: number): Promise<{ next: number; groups: AsyncGenerator<StoredResultGroup[]> }> {
    const [{ horizon }] = await query("read the results horizon", batchId, () =>
      this.sql`select txid_snapshot_xmin(txid_current_snapshot())::float8 as horizon`);
    const sql = this.sql;
    async function* groups(): AsyncGenerator<StoredResultGroup[]> {
      let from = { txid: after, isError: false, firstLine: -1 };
      for (;;) {
        const rows = await query("read results so far", batchId, () =>
          sql`select txid::float8 as txid, is_error, first_line, lines, records, digest from cluster_result_groups
            where batch_id = ${batchId} and txid < ${horizon}
              and (txid, is_error, first_line) > (${from.txid}::bigint, ${from.isError}, ${from.firstLine})
            order by txid, is_error, first_line limit 16`);
        if (!rows.length) return;
        const last = rows[rows.length - 1];
        from = { txid: last.txid, isError: last.is_error, firstLine: last.first_line };
        yield rows.map((row) => ({
          firstLine: row.first_line as number,
          lines: row.lines as number[],
          records: row.records as string,
          digest: row.digest as Uint8Array | null,
        }));
      }
    }
    // The first read starts before any transaction (those of groups recorded before schema version 4 are 0).
    return { next: Math.max(after, horizon), groups: groups() };
  }

  /** Each slice's usage, for a batch's total. */
  async sliceUsages(batchId: string): Promise<unknown[]> {
    const rows = await query("read usage", batchId, () =>
      this.sql`select usage from cluster_work where batch_id = ${batchId} and kind = 'slice' and usage is not null`);
    return rows.map((row) => row.usage);
  }

  /** Every item held now, by node: what the cluster route shows. */
  async heldItems(): Promise<HeldItemView[]> {
    const rows = await query("read held items", undefined, () =>
      this.sql`select node_id, batch_id, item, kind, first_line, line_count,
          extract(epoch from lease_until - now())::float8 as lease_left
        from cluster_work where node_id is not null and not done order by node_id, batch_id, item`);
    return rows.map((row) => ({
      nodeId: row.node_id,
      batchId: row.batch_id,
      item: row.item,
      kind: row.kind,
      firstLine: row.first_line,
      lineCount: row.line_count,
      leaseSeconds: Math.round(row.lease_left * 10) / 10,
    }));
  }

  /** Batches not yet ended, by progress of their items. */
  async batchesInWork(): Promise<BatchInWork[]> {
    const rows = await query("read batches in work", undefined, () =>
      this.sql`select b.batch_id, b.stop, b.slices_left, (select count(*)::int from cluster_work w where w.batch_id = b.batch_id and w.kind = 'slice') as slices
        from cluster_batches b order by b.batch_id`);
    return rows.map((row) => ({ batchId: row.batch_id, stop: row.stop, slices: row.slices, slicesLeft: row.slices_left }));
  }
}
