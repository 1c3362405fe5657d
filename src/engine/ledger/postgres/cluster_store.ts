/**
 * The PostgreSQL ledger's tables (migrations 2 and 3), as one node writes
 * them: its node row and heartbeats, claims of work items with leases, and
 * fenced results.
 *
 * Leases are timed by the database's clock, so nodes' clocks need not agree.
 * A claim raises the item's token; every write a holder makes names the token
 * it claimed with and changes nothing once another node has claimed the item
 * (fencing): a node paused past its lease may wake with answers arriving, and
 * none of them is recorded. Results are recorded a group a write, keyed by
 * their first line as the last guard.
 *
 * @module
 */
import type postgres from "postgres";
import type { ProcessIdentity } from "../../../runtime/process_identity.ts";
import { sha256Hex } from "../../../integrity/sha256.ts";
import { query } from "../../../storage/postgres/shared.ts";
import {
  type ClaimOptions,
  FINALIZE_ITEM,
  type HeldItem,
  type SliceSpec,
  type StopReason,
  VALIDATE_ITEM,
  type WorkItem,
  type WorkKind,
} from "../ledger.ts";
import { ClusterReads } from "./cluster_reads.ts";

/** One result to record. */
export interface ResultRow {
  line: number;
  isError: boolean;
  /** A JSONL record (no newline inside). */
  record: string;
}

/** The results of one kind of a write, as one row: lines ascending, records joined by newlines, their SHA-256. */
interface ResultGroup {
  firstLine: number;
  lastLine: number;
  lines: string;
  records: string;
  digest: string;
}

/** A write's results of one kind as a group (null: none of that kind). */
function groupOf(rows: readonly ResultRow[], isError: boolean): ResultGroup | null {
  const chosen = rows.filter((row) => row.isError === isError).sort((a, b) => a.line - b.line);
  if (!chosen.length) return null;
  // Records go as one text parameter: as a text array, every quote of every record would be escaped on the way.
  const records = chosen.map((row) => row.record).join("\n");
  return {
    firstLine: chosen[0].line,
    lastLine: chosen[chosen.length - 1].line,
    lines: chosen.map((row) => row.line).join(","),
    records,
    digest: sha256Hex(records),
  };
}

/** A claimed item with the counts its slice had recorded when it was claimed (a slice taken over goes on from them). */
export interface ClaimedItem extends WorkItem {
  completed: number;
  failed: number;
  /** A `BatchUsage`, or null. */
  usage: unknown;
}

// deno-lint-ignore no-explicit-any
type Row = Record<string, any>;

function workItem(row: Row): ClaimedItem {
  return {
    batchId: row.batch_id,
    owner: row.owner,
    stop: row.stop,
    item: row.item,
    kind: row.kind,
    firstLine: row.first_line,
    lineCount: row.line_count,
    byteStart: Number(row.byte_start),
    byteEnd: Number(row.byte_end),
    sha256: row.sha256,
    token: row.token,
    priority: row.priority ?? 0,
    completed: row.completed,
    failed: row.failed,
    usage: row.usage,
  };
}

/** The ledger's tables, as one node uses them: its claims and its fenced writes (reads in `cluster_reads.ts`). */
export class ClusterStore extends ClusterReads {
  /** Called when a heartbeat found this node dropped from the node table and registered it again. */
  onRejoin?: () => void;

  constructor(
    sql: postgres.Sql,
    readonly nodeId: string,
    readonly leaseSeconds: number,
    readonly channel: string,
  ) {
    super(sql);
  }

  /** This node's identity, once registered: a node the others forgot registers again with it. */
  #me: ProcessIdentity | null = null;

  /** Adds this node to the node table (or refreshes it). */
  registerNode(me: ProcessIdentity): Promise<void> {
    this.#me = me;
    return query("register the node", undefined, async () => {
      await this.sql`insert into cluster_nodes (node_id, host, boot_id, pid_namespace, pid)
        values (${this.nodeId}, ${me.host}, ${me.bootId ?? null}, ${me.pidNamespace ?? null}, ${me.pid})
        on conflict (node_id) do update set host = excluded.host, boot_id = excluded.boot_id,
          pid_namespace = excluded.pid_namespace, pid = excluded.pid, started_at = now(), heartbeat_at = now()`;
    });
  }

  /** Removes this node from the node table and hands back what it holds, for others to claim at once. */
  leave(): Promise<void> {
    return query("leave the cluster", undefined, async () => {
      await this.sql.begin(async (tx) => {
        await tx`update cluster_work set node_id = null, lease_until = null where node_id = ${this.nodeId} and not done`;
        await tx`delete from cluster_nodes where node_id = ${this.nodeId}`;
        await tx`select pg_notify(${this.channel}, 'work')`;
      });
    });
  }

  /** Drops a node known to be gone and frees its items at once (their tokens still fence it). */
  forgetNode(nodeId: string): Promise<void> {
    return query("forget a node", undefined, async () => {
      await this.sql.begin(async (tx) => {
        await tx`update cluster_work set node_id = null, lease_until = null where node_id = ${nodeId} and not done`;
        await tx`delete from cluster_nodes where node_id = ${nodeId}`;
        await tx`select pg_notify(${this.channel}, 'work')`;
      });
    });
  }

  /**
   * Refreshes this node's heartbeat and the leases of the items it holds;
   * returns the ones it still holds (the others were claimed by another node).
   */
  heartbeat(held: readonly HeldItem[]): Promise<HeldItem[]> {
    return query("send a heartbeat", undefined, async () => {
      const beat = await this.sql`update cluster_nodes set heartbeat_at = now() where node_id = ${this.nodeId} returning 1`;
      // Silent so long that the others dropped it (a long freeze): it joins again, visible and
      // counted in the budgets' shares; what it held has lapsed and was freed meanwhile.
      if (!beat.length && this.#me) {
        await this.registerNode(this.#me);
        this.onRejoin?.();
      }
      if (!held.length) return [];
      const rows = await this.sql`update cluster_work w set lease_until = now() + make_interval(secs => ${this.leaseSeconds})
        from unnest(${held.map((h) => h.batchId)}::text[], ${held.map((h) => h.item)}::int[], ${held.map((h) => h.token)}::int[])
          as h(batch_id, item, token)
        where w.batch_id = h.batch_id and w.item = h.item and w.token = h.token and w.node_id = ${this.nodeId} and not w.done
        returning w.batch_id, w.item, w.token`;
      return rows.map((row) => ({ batchId: row.batch_id, item: row.item, token: row.token }));
    });
  }

  /**
   * Claims one item nobody holds (or whose lease lapsed), in the order of
   * `WorkLedger.claim` (as `../local/slice_choice.ts`); `weights` is JSON,
   * owner to weight (1 when absent).
   */
  claim(kinds: readonly WorkKind[], weights = "{}", how: ClaimOptions = {}): Promise<ClaimedItem | null> {
    const beyond = how.beyondLimit;
    return query("claim work", undefined, async () => {
      const rows = await this.sql`
        with held as (
          select b.owner, count(*) / coalesce((${weights}::jsonb ->> b.owner)::float8, 1) as share
          from cluster_work h join cluster_batches b on b.batch_id = h.batch_id
          where h.kind = 'slice' and not h.done and h.lease_until >= now()
          group by b.owner),
        most as (select coalesce(max(share), 0) as share from held)
        update cluster_work w
        set node_id = ${this.nodeId}, token = w.token + 1, lease_until = now() + make_interval(secs => ${this.leaseSeconds})
        from (select c.batch_id, c.item from cluster_work c
                join cluster_batches cb on cb.batch_id = c.batch_id
                left join held on held.owner = cb.owner
              where not c.done and (c.lease_until is null or c.lease_until < now())
                and c.kind = any(${kinds as string[]}::text[])
                and (c.kind <> 'slice' or not cb.paused or cb.stop is not null)
                ${beyond ? this.sql`and c.kind = 'slice' and (cb.priority > ${beyond.lowestPriority} or coalesce(held.share, 0)
                  + 1 / coalesce((${weights}::jsonb ->> cb.owner)::float8, 1) <= (select share from most))` : this.sql``}
              order by c.kind = 'slice', cb.priority desc, coalesce(held.share, 0), c.batch_id, c.item
              limit 1 for update of c skip locked) picked, cluster_batches b
        where w.batch_id = picked.batch_id and w.item = picked.item and b.batch_id = w.batch_id
        returning w.*, b.owner, b.stop, b.priority`;
      return rows.length ? workItem(rows[0]) : null;
    });
  }

  /** Adds a new batch and its validation item; `notify` tells the nodes (once the batch document exists). */
  addBatch(batchId: string, owner: string, inputFileId: string, expiresAt: number, priority = 0): Promise<void> {
    return query("add a batch to the cluster", batchId, async () => {
      await this.sql.begin(async (tx) => {
        await tx`insert into cluster_batches (batch_id, owner, input_file_id, expires_at, priority)
          values (${batchId}, ${owner}, ${inputFileId}, ${expiresAt}, ${priority})`;
        await tx`insert into cluster_work (batch_id, item, kind) values (${batchId}, ${VALIDATE_ITEM}, 'validate')`;
      });
    });
  }

  /** Wakes every node to look for work. */
  notifyWork(): Promise<void> {
    return query("notify the cluster", undefined, async () => {
      await this.sql`select pg_notify(${this.channel}, 'work')`;
    });
  }

  /**
   * Adds slices under a held validation, numbered after the batch's others;
   * `final` ends the validation with them, and sets how many slices are left
   * (those added so far may be done already: none left, or none at all, goes
   * straight to finalizing). False, changing nothing, when the claim was lost.
   */
  addSlices(held: HeldItem, slices: readonly SliceSpec[], final: boolean): Promise<boolean> {
    return query("add a batch's slices", held.batchId, () =>
      this.sql.begin(async (tx) => {
        // The batch row's lock orders this with slices finishing meanwhile (see finishSlice).
        const [batch] = await tx`select 1 from cluster_batches where batch_id = ${held.batchId} for update`;
        if (!batch) return false;
        const claimed = tx`batch_id = ${held.batchId} and item = ${held.item} and token = ${held.token}
          and node_id = ${this.nodeId} and not done`;
        const validation = final
          ? await tx`update cluster_work set done = true, node_id = null, lease_until = null where ${claimed} returning 1`
          : await tx`select 1 from cluster_work where ${claimed} for update`;
        if (!validation.length) return false;
        const [{ before, finished }] = await tx`select count(*)::int as before, (count(*) filter (where done))::int as finished
          from cluster_work where batch_id = ${held.batchId} and kind = 'slice'`;
        if (slices.length) {
          await tx`insert into cluster_work (batch_id, item, kind, first_line, line_count, byte_start, byte_end, sha256)
            select ${held.batchId}, s.item, 'slice', s.first_line, s.line_count, s.byte_start, s.byte_end, s.sha256
            from unnest(${slices.map((_, i) => before + i)}::int[], ${slices.map((s) => s.firstLine)}::int[],
                        ${slices.map((s) => s.lineCount)}::int[], ${slices.map((s) => s.byteStart)}::bigint[],
                        ${slices.map((s) => s.byteEnd)}::bigint[], ${slices.map((s) => s.sha256)}::text[])
              as s(item, first_line, line_count, byte_start, byte_end, sha256)`;
        }
        if (final) {
          const left = before + slices.length - finished;
          if (left === 0) {
            await tx`insert into cluster_work (batch_id, item, kind) values (${held.batchId}, ${FINALIZE_ITEM}, 'finalize')
              on conflict do nothing`;
          }
          await tx`update cluster_batches set slices_left = ${left} where batch_id = ${held.batchId}`;
        }
        if (final || slices.length) await tx`select pg_notify(${this.channel}, 'work')`;
        return true;
      }) as Promise<boolean>);
  }

  /** Where the slices added to a batch so far end. */
  async slicedSoFar(batchId: string): Promise<{ lines: number; bytes: number }> {
    const [row] = await query("read a batch's slices so far", batchId, () =>
      this.sql`select coalesce(max(first_line + line_count - 1), 0)::int as lines, coalesce(max(byte_end), 0)::float8 as bytes
        from cluster_work where batch_id = ${batchId} and kind = 'slice'`);
    return { lines: row.lines, bytes: Number(row.bytes) };
  }

  /**
   * Records results of a held item in one statement that first checks the
   * claim (fencing): a slice's with its new counts, the finalizer's (expired
   * lines) without. False, recording nothing, when another node claimed the
   * item.
   */
  recordResults(
    held: HeldItem,
    rows: readonly ResultRow[],
    counts?: { completed: number; failed: number; usage: unknown },
  ): Promise<boolean> {
    const claimed = this.sql`batch_id = ${held.batchId} and item = ${held.item} and token = ${held.token}
      and node_id = ${this.nodeId} and not done`;
    const fence = counts
      ? this.sql`update cluster_work set completed = ${counts.completed}, failed = ${counts.failed},
          usage = ${this.sql.json(counts.usage as postgres.JSONValue)} where ${claimed} returning 1`
      : this.sql`select 1 from cluster_work where ${claimed} for update`;
    const [output, errors] = [groupOf(rows, false), groupOf(rows, true)];
    return query("record results", held.batchId, async () => {
      const [result] = await this.sql`with fence as (${fence}), written as (
          insert into cluster_result_groups (batch_id, first_line, last_line, is_error, lines, records, digest)
          select ${held.batchId}, g.first_line, g.last_line, g.is_error, string_to_array(g.lines, ',')::int[], g.records,
            decode(g.digest, 'hex')
          from (values
              (${output?.firstLine ?? null}::int, ${output?.lastLine ?? null}::int, false, ${output?.lines ?? null}::text,
               ${output?.records ?? null}::text, ${output?.digest ?? null}::text),
              (${errors?.firstLine ?? null}::int, ${errors?.lastLine ?? null}::int, true, ${errors?.lines ?? null}::text,
               ${errors?.records ?? null}::text, ${errors?.digest ?? null}::text)
            ) as g(first_line, last_line, is_error, lines, records, digest)
          where g.lines is not null and exists (select 1 from fence)
          returning 1
        )
        select (select count(*) from fence)::int as fenced`;
      return result.fenced === 1;
    });
  }

  /**
   * Marks a held slice done; the last slice of a batch adds its finalize
   * item. False, changing nothing, when the slice was claimed by another node.
   */
  finishSlice(held: HeldItem): Promise<boolean> {
    return query("finish a slice", held.batchId, () =>
      this.sql.begin(async (tx) => {
        // The batch row's lock orders slices finishing at once on several nodes: exactly one sees 0 left.
        const [batch] = await tx`select slices_left from cluster_batches where batch_id = ${held.batchId} for update`;
        if (!batch) return false;
        const done = await tx`update cluster_work set done = true, node_id = null, lease_until = null
          where batch_id = ${held.batchId} and item = ${held.item} and token = ${held.token} and node_id = ${this.nodeId} and not done
          returning 1`;
        if (!done.length) return false;
        const [{ slices_left }] = await tx`update cluster_batches set slices_left = slices_left - 1
          where batch_id = ${held.batchId} returning slices_left`;
        if (slices_left === 0) {
          await tx`insert into cluster_work (batch_id, item, kind) values (${held.batchId}, ${FINALIZE_ITEM}, 'finalize')
            on conflict do nothing`;
          await tx`select pg_notify(${this.channel}, 'work')`;
        }
        return true;
      }) as Promise<boolean>);
  }

  /** Hands back an item this node holds, for any node to claim at once. */
  release(held: HeldItem): Promise<void> {
    return query("hand back an item", held.batchId, async () => {
      await this.sql`update cluster_work set node_id = null, lease_until = null
        where batch_id = ${held.batchId} and item = ${held.item} and token = ${held.token} and node_id = ${this.nodeId} and not done`;
      await this.sql`select pg_notify(${this.channel}, 'work')`;
    });
  }

  /**
   * Tells every node that a batch must stop (`failure` says why, for `fail`);
   * false when it had already been told (or is not in the cluster).
   */
  /** Pauses or resumes a batch and tells the nodes (a pause as a stop to look at, a resume as work); false when it is not in the cluster. */
  pauseBatch(batchId: string, paused: boolean): Promise<boolean> {
    return query(paused ? "pause a batch" : "resume a batch", batchId, () =>
      this.sql.begin(async (tx) => {
        const rows = await tx`update cluster_batches set paused = ${paused} where batch_id = ${batchId} returning 1`;
        if (rows.length) await tx`select pg_notify(${this.channel}, ${paused ? `stop:${batchId}` : "work"})`;
        return rows.length === 1;
      }) as Promise<boolean>);
  }

  stopBatch(batchId: string, reason: StopReason, failure: string | null = null): Promise<boolean> {
    return query("stop a batch", batchId, () =>
      this.sql.begin(async (tx) => {
        // A failure replaces another stop (a cancel whose finalizing cannot succeed fails); nothing replaces a failure.
        const rows = reason === "fail"
          ? await tx`update cluster_batches set stop = 'fail', failure = ${failure}
              where batch_id = ${batchId} and stop is distinct from 'fail' returning 1`
          : await tx`update cluster_batches set stop = ${reason}, failure = ${failure}
              where batch_id = ${batchId} and stop is null returning 1`;
        if (rows.length) await tx`select pg_notify(${this.channel}, ${`stop:${batchId}`})`;
        return rows.length === 1;
      }) as Promise<boolean>);
  }

  /**
   * Stops for expiry the batches whose window ended by the database's clock
   * (so that one node's fast clock expires nothing early), unless their lines
   * are all done; returns their ids.
   */
  async expireDue(): Promise<string[]> {
    const rows = await query("expire batches", undefined, () =>
      this.sql`update cluster_batches set stop = 'expire'
        where stop is null and expires_at <= extract(epoch from now()) and (slices_left is null or slices_left > 0)
        returning batch_id`);
    const ids = rows.map((row) => row.batch_id as string);
    for (const id of ids) await query("notify the cluster", id, () => this.sql`select pg_notify(${this.channel}, ${`stop:${id}`})`);
    return ids;
  }

  /** Takes an ended batch out of the cluster: its items and its row (its results are its files now). */
  removeBatch(batchId: string): Promise<void> {
    return query("remove an ended batch", batchId, async () => {
      await this.sql.begin(async (tx) => {
        await tx`delete from cluster_work where batch_id = ${batchId}`;
        await tx`delete from cluster_batches where batch_id = ${batchId}`;
      });
    });
  }

  /** Whether this node still holds an item (by its token). */
  async holds(held: HeldItem): Promise<boolean> {
    const rows = await query("check a claim", held.batchId, () =>
      this.sql`select 1 from cluster_work where batch_id = ${held.batchId} and item = ${held.item}
        and token = ${held.token} and node_id = ${this.nodeId} and not done`);
    return rows.length === 1;
  }
}
