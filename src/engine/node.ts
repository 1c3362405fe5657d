/**
 * A node: it claims work items from the ledger while it has room (a batch's
 * validation, its slices, its finalizing), runs each item's step, keeps its
 * claims alive by heartbeat (where claims can lapse), stops a batch's slices
 * when told (the ledger's signals, with a poll as the fallback), and hands
 * everything back when it closes. A single node is the same loop on a ledger
 * whose only node it is.
 *
 * Each poll also expires batches whose window ended, frees the items of
 * nodes that are gone, and sets this node's part of the request and token
 * budgets (an equal share per live node). What a failed step means is
 * decided by `failure_policy.ts`. Every timer runs on the injected clock.
 *
 * @module
 */
import { sleep } from "../shared/clock.ts";
import type { BatchErrorEntry } from "../batch/model/objects.ts";
import type { EngineContext } from "./context.ts";
import { classifyStepFailure, type StepFailure } from "./failure_policy.ts";
import { runFinalize } from "./finalize_step.ts";
import { Housekeeping } from "./housekeeping.ts";
import type { Halt, HeldItem, LedgerOverview, LedgerSignal, WorkItem, WorkKind } from "./ledger/ledger.ts";
import { backoffDelay, type BackoffPolicy } from "./lines/backoff.ts";
import type { Dispatcher } from "./lines/dispatcher.ts";
import { runSlice, type SliceInFlight } from "./slice_step.ts";
import { runValidation } from "./validate_step.ts";

/** How a node paces its work. */
export interface NodeOptions {
  /** Most slices it runs at once. */
  maxSlices: number;
  /** How often it polls the ledger (stops, expiries, gone nodes, work a signal missed). */
  pollMs: number;
  /** Delays before an item whose step failed on something that can heal is handed back. */
  stepRetry: BackoffPolicy;
  /** The dispatcher whose budgets are shared among live nodes. */
  dispatcher: Dispatcher;
}

/** Most validations and finalizings a node runs at once. */
const MAX_OTHER_ITEMS = 2;
/** Conflicts on a batch's document in a row after which it counts as corrupted. */
const MAX_CONFLICTS_IN_A_ROW = 5;

interface HeldEntry {
  held: HeldItem;
  kind: WorkKind;
  priority: number;
}

/** How a batch's item has been failing, for the backoff and for logging each change once. */
interface FailingItem {
  retries: number;
  conflicts: number;
  /** The failure last logged (logged again only when it changes). */
  loggedAs: string | null;
}

const keyOf = (held: Pick<HeldItem, "batchId" | "item">) => `${held.batchId}/${held.item}`;

/** A running node. */
export class EngineNode {
  readonly #context: EngineContext;
  readonly #options: NodeOptions;
  readonly #housekeeping: Housekeeping;
  readonly #closing = new AbortController();
  readonly #held = new Map<string, HeldEntry>();
  readonly #running = new Map<string, SliceInFlight>();
  readonly #runs = new Set<Promise<void>>();
  readonly #failing = new Map<string, FailingItem>();
  /** Batches whose finalizing failed while they were failing: they end without result files. */
  readonly #withoutResults = new Set<string>();
  #pumping = false;
  #pumpAgain = false;
  #overview: LedgerOverview = { batches: {}, linesWaiting: 0 };
  /** Whether this node reports the ledger's overview (one node does, so metrics summed over nodes count each batch once). */
  #reporting = true;
  #freshLook: Promise<LedgerOverview> | null = null;
  #pollFailing: string | null = null;
  #heartbeatFailing: string | null = null;

  constructor(context: EngineContext, options: NodeOptions) {
    this.#context = context;
    this.#options = options;
    this.#housekeeping = new Housekeeping(context.clock, this.#closing.signal);
  }

  /** What the node's metrics show: its requests in flight, and (on the reporting node) the batches and lines waiting. */
  get stats(): LedgerOverview {
    return this.#reporting ? this.#overview : { batches: {}, linesWaiting: 0 };
  }

  /**
   * The same, read from the ledger now rather than at the last poll (a batch
   * that just ended is no longer counted); reads made at once share one look.
   */
  freshStats(): Promise<LedgerOverview> {
    this.#freshLook ??= (async () => {
      try {
        if (this.#reporting) this.#overview = await this.#context.ledger.overview();
      } catch {
        // The ledger does not answer: the last poll's figures stand.
      } finally {
        this.#freshLook = null;
      }
      return this.stats;
    })();
    return this.#freshLook;
  }

  /** Joins and starts working. */
  async start(): Promise<void> {
    const { ledger } = this.#context;
    await ledger.start((signal) => this.#signalled(signal));
    // The first poll (which frees the work of nodes gone, a former life of this process among them) runs beside the API.
    this.#housekeeping.repeat(this.#options.pollMs, () => this.#poll(), true);
    if (ledger.heartbeatMs !== null) this.#housekeeping.repeat(ledger.heartbeatMs, () => this.#heartbeat());
    this.pump();
  }

  /** Stops claiming, lets items in flight finish within `graceMs` (then abandons their requests), hands everything back. */
  async close(graceMs: number, abandon: AbortController): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    const { clock } = this.#context;
    const grace = clock.setTimeout(() => abandon.abort(), graceMs);
    await Promise.allSettled([...this.#runs, this.#housekeeping.settled()]);
    clock.clearTimeout(grace);
    await this.#context.ledger.leave();
  }

  /** Claims work while there is room; called on every hint that there may be some. */
  pump(): void {
    if (this.#stopped) return;
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
            if (this.#stopped) return;
            const kinds: WorkKind[] = [];
            if (this.#count((kind) => kind !== "slice") < MAX_OTHER_ITEMS) kinds.push("validate", "finalize");
            const slices = this.#count((kind) => kind === "slice");
            const { maxSlices } = this.#options;
            if (slices < maxSlices) kinds.push("slice");
            const { ledger } = this.#context;
            let item = kinds.length ? await ledger.claim(kinds) : null;
            if (!item && slices >= maxSlices && slices < 2 * maxSlices) {
              // At its limit: only a slice that would otherwise wait behind this node's (see ClaimOptions).
              item = await ledger.claim(["slice"], { beyondLimit: { lowestPriority: this.#lowestSlicePriority() } });
            }
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

  get #stopped(): boolean {
    return this.#closing.signal.aborted || this.#context.run.stopping.aborted;
  }

  #lowestSlicePriority(): number {
    let lowest = Infinity;
    for (const entry of this.#held.values()) if (entry.kind === "slice") lowest = Math.min(lowest, entry.priority);
    return lowest;
  }

  #count(test: (kind: WorkKind) => boolean): number {
    let n = 0;
    for (const entry of this.#held.values()) if (test(entry.kind)) n++;
    return n;
  }

  #launch(item: WorkItem): void {
    const held = { batchId: item.batchId, item: item.item, token: item.token };
    this.#held.set(keyOf(held), { held, kind: item.kind, priority: item.priority });
    const run = this.#runItem(item).finally(() => {
      this.#held.delete(keyOf(held));
      this.#runs.delete(run);
      this.pump();
    });
    this.#runs.add(run);
  }

  async #runItem(item: WorkItem): Promise<void> {
    const context = this.#context;
    try {
      if (item.kind === "validate") await runValidation(context, item);
      else if (item.kind === "slice") await runSlice(context, item, this.#running);
      else {
        const withoutResults = this.#withoutResults.has(item.batchId);
        await runFinalize(context, item, withoutResults);
        this.#withoutResults.delete(item.batchId);
      }
      const failing = this.#failing.get(keyOf(item));
      if (failing?.loggedAs && !this.#stopped) context.logger.info(`batch ${item.batchId}: resumed (${item.kind})`);
      this.#failing.delete(keyOf(item));
    } catch (error) {
      if (this.#stopped) return;
      await this.#failed(item, classifyStepFailure(error)).catch((again) =>
        context.logger.error(`batch ${item.batchId}: ${item.kind} could not be handed back (${(again as Error).message})`)
      );
    }
  }

  /** Does what the failure policy says for an item whose step failed. */
  async #failed(item: WorkItem, failure: StepFailure): Promise<void> {
    const { ledger, logger } = this.#context;
    const held: HeldItem = { batchId: item.batchId, item: item.item, token: item.token };
    const state = this.#failing.get(keyOf(item)) ?? { retries: 0, conflicts: 0, loggedAs: null };
    this.#failing.set(keyOf(item), state);
    if (failure.kind !== "conflict") state.conflicts = 0;
    switch (failure.kind) {
      case "lost":
        logger.info(`${item.kind} ${item.item} of ${item.batchId}: taken over by another node, its results here dropped`);
        this.#failing.delete(keyOf(item));
        return;
      case "stop":
        logger.error(`batch ${item.batchId}: stopped, this process lost its storage: ${failure.message}`);
        return;
      case "conflict":
        if (++state.conflicts <= MAX_CONFLICTS_IN_A_ROW) return await ledger.release(held);
        return await this.#failed(item, {
          kind: "fatal",
          code: "storage_corrupted",
          message: `Its document keeps changing: ${failure.message}`,
          param: null,
        });
      case "transient": {
        if (state.loggedAs !== failure.message) {
          logger.error(
            `batch ${item.batchId}: ${item.kind} paused: ${failure.message}; trying again with backoff ` +
              `(at most ${this.#options.stepRetry.maxMs / 1000} s apart)`,
          );
          state.loggedAs = failure.message;
        }
        await sleep(this.#context.clock, backoffDelay(state.retries++, this.#options.stepRetry), this.#closing.signal);
        return await ledger.release(held);
      }
      case "fatal": {
        const entry: BatchErrorEntry = { code: failure.code, message: failure.message, param: failure.param, line: null };
        logger.error(`batch ${item.batchId} failed: ${failure.message}`);
        if (item.kind === "finalize") {
          // Finalizing failed: once more as a failing batch (its results kept), and if that fails too, without them.
          if ((await ledger.stopOf(item.batchId))?.stop === "fail") this.#withoutResults.add(item.batchId);
          else await ledger.stopBatch(item.batchId, "fail", JSON.stringify(entry));
          return await ledger.release(held);
        }
        await ledger.stopBatch(item.batchId, "fail", JSON.stringify(entry));
        this.#failing.delete(keyOf(item));
        if (item.kind === "validate") await ledger.addSlices(held, []);
        else await ledger.finishSlice(held);
        return;
      }
    }
  }

  #signalled(signal: LedgerSignal): void {
    if (signal.kind === "work") return this.pump();
    const batchId = signal.batchId;
    if (![...this.#running.values()].some((entry) => entry.held.batchId === batchId)) return;
    void this.#context.ledger.stopOf(batchId).then((found) => {
      const halt = found?.stop ?? (found?.paused ? "pause" : null);
      if (halt) this.#stopSlices(batchId, halt);
    }, () => {});
  }

  /** Stops this node's slices of a batch: no new line at once; requests in flight as the reason allows. */
  #stopSlices(batchId: string, halt: Halt): void {
    for (const { held, slice } of this.#running.values()) {
      if (held.batchId !== batchId || slice.stopDispatch.signal.aborted) continue;
      // A pause lets requests in flight finish and hands the slice back; the slice is claimed again on resume.
      if (halt === "pause") slice.paused = true;
      slice.stopDispatch.abort();
      // A cancel lets requests in flight finish for a while; an expiry or a failure has no use for their answers.
      if (halt === "cancel") this.#context.clock.setTimeout(() => slice.abortRequests.abort(), this.#context.cancelGraceMs, true);
      else if (halt !== "pause") slice.abortRequests.abort();
    }
  }

  async #heartbeat(): Promise<void> {
    const entries = [...this.#held.values()];
    let kept: HeldItem[];
    try {
      kept = await this.#context.ledger.heartbeat(entries.map((entry) => entry.held));
      if (this.#heartbeatFailing) this.#context.logger.info("heartbeats go through again");
      this.#heartbeatFailing = null;
    } catch (error) {
      const message = (error as Error).message;
      if (this.#heartbeatFailing !== message) this.#context.logger.error(`heartbeat failed: ${message}`);
      this.#heartbeatFailing = message;
      return;
    }
    const keptKeys = new Set(kept.map((h) => `${keyOf(h)}/${h.token}`));
    for (const { held } of entries) {
      if (keptKeys.has(`${keyOf(held)}/${held.token}`)) continue;
      // Claimed by another node (this one was paused past its lease): stop at once; its writes are refused anyway.
      const running = this.#running.get(keyOf(held));
      if (running && running.held.token === held.token && !running.slice.abortRequests.signal.aborted) {
        this.#context.logger.info(`slice ${held.item} of ${held.batchId}: claimed by another node (this one was stalled); its requests abandoned`);
        running.slice.stopDispatch.abort();
        running.slice.abortRequests.abort();
      }
    }
  }

  async #poll(): Promise<void> {
    const { ledger, logger } = this.#context;
    try {
      await ledger.expireDue();
      const running = [...new Set([...this.#running.values()].map((entry) => entry.held.batchId))];
      for (const [batchId, stop] of await ledger.stopsOf(running)) this.#stopSlices(batchId, stop);
      const nodes = await ledger.liveNodes();
      this.#options.dispatcher.shareBudgets(1 / nodes.count);
      this.#reporting = nodes.first === ledger.nodeId;
      this.#overview = await ledger.overview();
      if (this.#pollFailing) logger.info("the work ledger answers again");
      this.#pollFailing = null;
    } catch (error) {
      const message = (error as Error).message;
      if (this.#pollFailing !== message) logger.error(`polling the work ledger failed: ${message}`);
      this.#pollFailing = message;
    }
    this.pump();
  }

}
