/**
 * One node's share of the cluster's work: it claims items (validations,
 * slices, finalizing) while it has room, keeps their leases alive by
 * heartbeat, stops a batch's slices when told (LISTEN/NOTIFY, with a poll as
 * the fallback), and hands everything back when it closes.
 *
 * Each poll also expires batches whose window ended, frees the items of
 * nodes proven gone on this machine (a restarted process need not wait for
 * its former life's leases), and sets this node's part of the cluster's
 * request and token budgets (an equal share per live node).
 *
 * @module
 */
import { classifyStepFailure } from "../batch/engine/step_failures.ts";
import type { BatchErrorEntry } from "../batch/model/objects.ts";
import type { Dispatcher } from "../batch/run/dispatcher.ts";
import { type ProcessIdentity, provablyGone, thisProcess } from "../runtime/process_identity.ts";
import { readRecord } from "./batch_docs.ts";
import { ClusterError } from "./cluster_error.ts";
import type { ClusterOverview, ClusterStop, HeldItem, WorkItem, WorkKind } from "./cluster_store.ts";
import { type ClusterContext, nowSeconds } from "./context.ts";
import { runFinalize } from "./finalize_step.ts";
import { type RunningSlice, runSlice } from "./slice_step.ts";
import { runValidation } from "./validate_step.ts";

/** How a node paces its work. */
export interface NodeOptions {
  /** Most slices it runs at once. */
  maxSlices: number;
  /** How often it polls the cluster (stops, expiries, dead nodes, work missed by a notification). */
  pollMs: number;
  /** Delay before an item whose step failed (and can heal) is handed back for another try. */
  retryMs: number;
  /** The dispatcher whose budgets are the cluster's, shared among live nodes. */
  dispatcher: Dispatcher;
}

/** Most validations and finalizings a node runs at once. */
const MAX_OTHER_ITEMS = 2;

/** A node silent this many lease times is dropped from the node table (its items lapsed long before). */
const FORGET_AFTER_LEASES = 20;

interface HeldEntry {
  held: HeldItem;
  kind: WorkKind;
}

/** A running node. */
export class ClusterNode {
  readonly #context: ClusterContext;
  readonly #options: NodeOptions;
  readonly #held = new Map<string, HeldEntry>();
  readonly #running = new Map<string, RunningSlice>();
  readonly #runs = new Set<Promise<void>>();
  /** The poll's and heartbeat's timers, stopped on close (one-off waits run out on their own). */
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #me: ProcessIdentity | null = null;
  #pumping = false;
  #pumpAgain = false;
  #unlisten: (() => Promise<void>) | null = null;
  #closed = false;
  #inputsInUse = new Set<string>();
  #stats: ClusterOverview = { batches: {}, linesWaiting: 0 };

  constructor(context: ClusterContext, options: NodeOptions) {
    this.#context = context;
    this.#options = options;
  }

  /** Input files of batches that have not ended (as of the last poll, and those created here since). */
  get inputsInUse(): Set<string> {
    return this.#inputsInUse;
  }

  /** What the last poll saw. */
  get stats(): ClusterOverview {
    return this.#stats;
  }

  /** Joins the cluster and starts working. */
  async start(): Promise<void> {
    const { store } = this.#context;
    this.#me = await thisProcess();
    await store.registerNode(this.#me);
    const listener = await store.sql.listen(store.channel, (payload) => this.#notified(payload));
    this.#unlisten = () => listener.unlisten();
    // The first poll (which frees the work of a former life of this process, among others) runs at once, beside the API.
    void this.#poll().then(() => this.#every(this.#options.pollMs, () => this.#poll()));
    this.#every(Math.max(250, (store.leaseSeconds * 1000) / 3), () => this.#heartbeat());
    this.pump();
  }

  /** Stops claiming, lets slices in flight finish within `graceMs`, and hands back what it holds. */
  async close(graceMs: number, abandon: AbortController): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    const grace = setTimeout(() => abandon.abort(), graceMs);
    await Promise.allSettled([...this.#runs]);
    clearTimeout(grace);
    await this.#unlisten?.().catch(() => {});
    await this.#context.store.leave().catch((error) =>
      this.#context.logger.error(`could not hand back this node's work: ${(error as Error).message}`)
    );
  }

  /** Claims work while there is room; called on every hint that there may be some. */
  pump(): void {
    if (this.#closed || this.#context.run.stopping.aborted) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    void (async () => {
      try {
        do {
          this.#pumpAgain = false;
          for (;;) {
            if (this.#closed || this.#context.run.stopping.aborted) return;
            const kinds: WorkKind[] = [];
            if (this.#count((kind) => kind !== "slice") < MAX_OTHER_ITEMS) kinds.push("validate", "finalize");
            if (this.#count((kind) => kind === "slice") < this.#options.maxSlices) kinds.push("slice");
            if (!kinds.length) break;
            const item = await this.#context.store.claim(kinds);
            if (!item) break;
            this.#launch(item);
          }
        } while (this.#pumpAgain);
      } catch (error) {
        this.#context.logger.error(`cannot claim work: ${(error as Error).message}`);
      } finally {
        this.#pumping = false;
      }
    })();
  }

  #count(test: (kind: WorkKind) => boolean): number {
    let n = 0;
    for (const entry of this.#held.values()) if (test(entry.kind)) n++;
    return n;
  }

  #launch(item: WorkItem): void {
    const key = `${item.batchId}/${item.item}`;
    const held = { batchId: item.batchId, item: item.item, token: item.token };
    this.#held.set(key, { held, kind: item.kind });
    const run = this.#runItem(item).finally(() => {
      this.#held.delete(key);
      this.#runs.delete(run);
      this.pump();
    });
    this.#runs.add(run);
  }

  async #runItem(item: WorkItem): Promise<void> {
    const context = this.#context;
    const held = { batchId: item.batchId, item: item.item, token: item.token };
    try {
      if (item.kind === "validate") await runValidation(context, item);
      else if (item.kind === "finalize") await runFinalize(context, item);
      else {
        const record = await readRecord(context.storage, item.owner, item.batchId);
        if (!record) throw new ClusterError("input_changed", `batch ${item.batchId} has no document`);
        await runSlice(context, item, record, this.#running);
      }
    } catch (error) {
      if (this.#context.run.stopping.aborted) return;
      if (error instanceof ClusterError && error.code === "lease_lost") {
        context.logger.info(`${item.kind} ${item.item} of ${item.batchId}: taken over by another node, its results here dropped`);
        return;
      }
      const verdict = error instanceof ClusterError
        ? { kind: "fatal" as const, code: "input_file_corrupted", message: error.message, param: "input_file_id" }
        : classifyStepFailure(error);
      if (verdict.kind === "fatal" && item.kind !== "finalize") {
        context.logger.error(`batch ${item.batchId} failed: ${verdict.message}`);
        const entry: BatchErrorEntry = { code: verdict.code, message: verdict.message, param: verdict.param, line: null };
        await this.#failBatch(item, held, entry).catch((again) =>
          context.logger.error(`batch ${item.batchId}: could not be marked failed (${(again as Error).message}); tried again later`)
        );
        return;
      }
      context.logger.error(`${item.kind} ${item.item} of ${item.batchId}: ${verdict.message}; handed back to be tried again`);
      await this.#sleep(this.#options.retryMs);
      await context.store.release(held).catch(() => {});
    }
  }

  /** Stops a batch for a failure that cannot heal; its finalizing then ends it `failed`, results kept. */
  async #failBatch(item: WorkItem, held: HeldItem, entry: BatchErrorEntry): Promise<void> {
    const { store } = this.#context;
    await store.stopBatch(item.batchId, "fail", JSON.stringify(entry));
    if (item.kind === "validate") await store.addSlices(held, []);
    else await store.finishSlice(held);
  }

  #notified(payload: string): void {
    if (payload === "work") this.pump();
    else if (payload.startsWith("stop:")) {
      const batchId = payload.slice(5);
      if ([...this.#running.values()].some((slice) => slice.held.batchId === batchId)) {
        void this.#context.store.stopOf(batchId).then(
          (found) => found?.stop && this.#stopSlices(batchId, found.stop),
          () => {},
        );
      }
    }
  }

  /** Stops this node's slices of a batch: no new line at once; requests in flight as the reason allows. */
  #stopSlices(batchId: string, stop: ClusterStop): void {
    for (const slice of this.#running.values()) {
      if (slice.held.batchId !== batchId || slice.active.stop !== null) continue;
      const active = slice.active;
      active.stop = stop === "cancel" ? "cancel" : "expire";
      active.stopDispatch.abort();
      if (stop === "fail") active.abortRequests.abort();
      if (stop === "cancel") this.#after(this.#context.cancelGraceMs, () => active.abortRequests.abort());
    }
  }

  async #heartbeat(): Promise<void> {
    const entries = [...this.#held.values()];
    let kept;
    try {
      kept = await this.#context.store.heartbeat(entries.map((entry) => entry.held));
    } catch (error) {
      this.#context.logger.error(`heartbeat failed: ${(error as Error).message}`);
      return;
    }
    const keptKeys = new Set(kept.map((h) => `${h.batchId}/${h.item}/${h.token}`));
    for (const { held } of entries) {
      if (keptKeys.has(`${held.batchId}/${held.item}/${held.token}`)) continue;
      // Claimed by another node (this one was paused past its lease): stop at once; its writes are refused anyway.
      const slice = this.#running.get(`${held.batchId}/${held.item}`);
      if (slice && slice.held.token === held.token && !slice.active.abortRequests.signal.aborted) {
        this.#context.logger.info(`slice ${held.item} of ${held.batchId}: claimed by another node (this one was stalled); its requests abandoned`);
        slice.active.stopDispatch.abort();
        slice.active.abortRequests.abort();
      }
    }
  }

  async #poll(): Promise<void> {
    const context = this.#context;
    const { store } = context;
    try {
      await store.expireDue(nowSeconds(context));
      const running = [...new Set([...this.#running.values()].map((slice) => slice.held.batchId))];
      for (const [batchId, stop] of await store.stopsOf(running)) this.#stopSlices(batchId, stop);
      await this.#lookAtNodes();
      this.#inputsInUse = await store.inputsInUse();
      this.#stats = await store.overview();
    } catch (error) {
      context.logger.error(`cluster poll failed: ${(error as Error).message}`);
    }
    this.pump();
  }

  /** Frees the work of nodes proven gone, forgets long-silent ones, and sets this node's budget share. */
  async #lookAtNodes(): Promise<void> {
    const { store } = this.#context;
    let live = 1;
    for (const node of await store.nodes()) {
      if (node.nodeId === store.nodeId) continue;
      if (provablyGone(node, this.#me!) || node.silentSeconds > FORGET_AFTER_LEASES * store.leaseSeconds) {
        this.#context.logger.info(`node ${node.nodeId} is gone: its work is free to claim`);
        await store.forgetNode(node.nodeId);
      } else if (node.silentSeconds < store.leaseSeconds) live++;
    }
    this.#options.dispatcher.shareBudgets(1 / live);
  }

  #every(ms: number, task: () => Promise<void>): void {
    const tick = () => {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#closed) return;
        void task().finally(() => {
          if (!this.#closed) tick();
        });
      }, ms);
      this.#timers.add(timer);
    };
    tick();
  }

  #after(ms: number, task: () => void): void {
    setTimeout(task, ms);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#after(ms, resolve));
  }
}
