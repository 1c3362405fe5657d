/**
 * Delivers the webhook outbox: each event is POSTed, signed, to its owner's
 * endpoint until the endpoint answers 2xx, with exponential backoff (1 s
 * doubling to an hour) for up to a day; every attempt of one event carries
 * the same `webhook-id`. An event is sent only once its batch's record shows
 * the status that caused it (see the engine's `webhook_outbox.ts`), and is
 * removed from the outbox only after a 2xx: delivery is at least once, across
 * crashes. Each attempt is claimed in the outbox first, so that of several
 * nodes sharing one outbox a single one makes it. Deliveries run beside the engine, a few at a time, each with a
 * timeout: a slow or dead endpoint delays only its own events.
 *
 * @module
 */
import type { BatchRecord } from "../batch/model/objects.ts";
import { batchDocKey, WEBHOOK_OUTBOX_PREFIX } from "../batch/model/storage_keys.ts";
import type { OutboxEntry } from "../batch/model/webhook_event.ts";
import { type Clock, type ClockTimer, systemClock } from "../shared/clock.ts";
import { type Logger, silentLogger } from "../shared/logger.ts";
import { redactUrl } from "../shared/redact.ts";
import { StorageError } from "../storage/errors.ts";
import type { Storage } from "../storage/types.ts";
import { signatureHeaders } from "./signature.ts";

/** Where one owner's events go. */
export interface WebhookEndpoint {
  url: string;
  /** `whsec_…` */
  secret: string;
}

/** Options for {@link createWebhookDeliverer}. */
export interface WebhookDelivererOptions {
  storage: Storage;
  /** The owner's endpoint, or null (its events are dropped). */
  endpointFor(owner: string): WebhookEndpoint | null;
  logger?: Logger;
  clock?: Clock;
  /** Wait before the second attempt, doubling after each (default 1 s). */
  firstRetryMs?: number;
  /** Longest wait between attempts (default 1 h). */
  maxRetryMs?: number;
  /** An event still undelivered this long after its batch ended is dropped, with an error logged (default 24 h). */
  giveUpAfterMs?: number;
  /** Longest wait for an endpoint's answer (default 10 s). */
  timeoutMs?: number;
  /** How often the outbox is looked at when nothing wakes the deliverer (default 1 s). */
  pollMs?: number;
}

/** A running deliverer. */
export interface WebhookDeliverer {
  /** Starts looking at the outbox. */
  start(): void;
  /** Looks at the outbox now (an event was just recorded). */
  kick(): void;
  /** Stops; deliveries in flight are abandoned (they are tried again after a restart). */
  close(): Promise<void>;
}

/** Deliveries in flight at once. */
const CONCURRENCY = 8;
/** Of them, to one endpoint: a hanging endpoint holds at most these, the others go on. */
const PER_ENDPOINT = 2;
/** How much longer than an attempt's timeout its claim lasts (a deliverer that dies mid-attempt frees it then). */
const CLAIM_MARGIN_MS = 5_000;

/**
 * Creates a deliverer of the outbox in `storage`.
 *
 * @example
 * ```ts
 * const deliverer = createWebhookDeliverer({ storage, endpointFor: () => ({ url, secret: "whsec_…" }) });
 * const engine = createBatchEngine({ storage, target, webhooks: { wants: () => true, recorded: () => deliverer.kick() } });
 * deliverer.start();
 * ```
 */
export function createWebhookDeliverer(options: WebhookDelivererOptions): WebhookDeliverer {
  const { storage, endpointFor } = options;
  const logger = options.logger ?? silentLogger;
  // On a database, attempts and claims are timed by its clock: every node's deliverer agrees on them.
  const clock = options.clock ?? storage.clock ?? systemClock;
  const firstRetryMs = options.firstRetryMs ?? 1_000;
  const maxRetryMs = options.maxRetryMs ?? 3_600_000;
  const giveUpAfterMs = options.giveUpAfterMs ?? 86_400_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const pollMs = options.pollMs ?? 1_000;
  const closing = new AbortController();
  const inFlight = new Map<string, Promise<void>>();
  let timer: ClockTimer | null = null;
  let sweeping: Promise<void> | null = null;
  let again = false;
  /** Attempts in flight per endpoint URL. */
  const toEndpoint = new Map<string, number>();
  /**
   * When each entry read is next worth reading (its next attempt, or the end
   * of another deliverer's claim): a sweep reads only the entries due, not
   * the whole outbox every time. Both times only move forward, so an entry is
   * never read later than it is due.
   */
  const notBefore = new Map<string, number>();

  /** Sends one event once; settles its entry (removed, rescheduled or dropped). */
  const deliver = async (key: string): Promise<void> => {
    const stored = await storage.documents.get<OutboxEntry>(key);
    if (!stored) return void notBefore.delete(key);
    const entry = stored.value;
    const due = Math.max(entry.next_attempt_at, entry.claimed_until ?? 0);
    if (due > clock.now()) return void notBefore.set(key, due);
    const url = endpointFor(entry.owner)?.url;
    // This endpoint has its share in flight (it may hang): the entry waits for the next sweep.
    if (url !== undefined && (toEndpoint.get(url) ?? 0) >= PER_ENDPOINT) return;
    if (url !== undefined) toEndpoint.set(url, (toEndpoint.get(url) ?? 0) + 1);
    try {
      await attempt(key, stored);
    } finally {
      if (url !== undefined) {
        const left = (toEndpoint.get(url) ?? 1) - 1;
        if (left > 0) toEndpoint.set(url, left);
        else toEndpoint.delete(url);
      }
    }
  };

  /** Claims and makes one attempt of a due entry. */
  const attempt = async (key: string, stored: { value: OutboxEntry; version: number }): Promise<void> => {
    const entry = stored.value;
    // The attempt is claimed first (compare-and-swap): of several deliverers on one outbox, one sends it.
    let version: number;
    try {
      version = await storage.documents.put<OutboxEntry>(key, { ...entry, claimed_until: clock.now() + timeoutMs + CLAIM_MARGIN_MS }, {
        ifVersion: stored.version,
      });
    } catch (error) {
      if (error instanceof StorageError && (error.code === "conflict" || error.code === "not_found")) return;
      throw error;
    }
    const settle = (removeReason: string | null) =>
      removeReason === null ? Promise.resolve() : storage.documents.delete(key, { ifVersion: version }).then(() => {
        if (removeReason) logger.info(`webhook ${entry.event.id}: ${removeReason}`);
      });
    const record = (await storage.documents.get<BatchRecord>(batchDocKey(entry.owner, entry.event.data.id)))?.value;
    if (!record) return await settle(`batch ${entry.event.data.id} is gone; event dropped`);
    if (record.batch.status !== entry.status) {
      // Recorded just before its status, which a crash kept from being written (or another node is writing): wait for it.
      const ended = ["completed", "failed", "expired", "cancelled"].includes(record.batch.status);
      if (ended) return await settle(`batch ended ${record.batch.status} instead; event dropped`);
      await storage.documents.put<OutboxEntry>(key, { ...entry, claimed_until: 0 }, { ifVersion: version });
      return;
    }
    const endpoint = endpointFor(entry.owner);
    if (!endpoint) return await settle("no endpoint for its owner any more; event dropped");

    const body = JSON.stringify(entry.event);
    let failure: string | null = null;
    try {
      const response = await fetch(endpoint.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "batchspool-webhooks",
          ...signatureHeaders(endpoint.secret, entry.event.id, Math.floor(clock.now() / 1000), body),
        },
        body,
        redirect: "manual",
        signal: AbortSignal.any([closing.signal, AbortSignal.timeout(timeoutMs)]),
      });
      await response.body?.cancel();
      // A redirect is not followed: it could turn the signed POST toward an address of the server's network.
      if (response.status >= 300 && response.status < 400) failure = `${redactUrl(endpoint.url)} answered ${response.status} (redirects are not followed)`;
      else if (response.status < 200 || response.status >= 300) failure = `${redactUrl(endpoint.url)} answered ${response.status}`;
    } catch (error) {
      if (closing.signal.aborted) {
        // Shutting down: the attempt is handed back for the next deliverer (here after a restart, or another node).
        await storage.documents.put<OutboxEntry>(key, { ...entry, claimed_until: 0 }, { ifVersion: version }).catch(() => {});
        return;
      }
      failure = `${redactUrl(endpoint.url)} unreachable: ${redactUrlsIn((error as Error).message, endpoint.url)}`;
    }
    if (failure === null) return await settle("");
    const attempts = entry.attempts + 1;
    if (clock.now() - entry.event.created_at * 1000 >= giveUpAfterMs) {
      logger.error(`webhook ${entry.event.id} (${entry.event.type} of ${entry.event.data.id}): ${failure}; gave up after ${attempts} attempts`);
      return await settle("");
    }
    const waitMs = Math.min(maxRetryMs, firstRetryMs * 2 ** (attempts - 1));
    if (attempts === 1) logger.warn(`webhook ${entry.event.id}: ${failure}; retrying with backoff (up to ${Math.round(giveUpAfterMs / 3_600_000)} h)`);
    await storage.documents.put<OutboxEntry>(key, { ...entry, attempts, next_attempt_at: clock.now() + waitMs, claimed_until: 0 }, {
      ifVersion: version,
    });
    notBefore.set(key, clock.now() + waitMs);
  };

  /** Starts the due deliveries, a few at a time, until the outbox has been gone through. */
  const sweep = async () => {
    let after: string | undefined;
    for (;;) {
      const page = await storage.documents.list(WEBHOOK_OUTBOX_PREFIX, { after, limit: 100 });
      for (const key of page.keys) {
        if (closing.signal.aborted) return;
        if (inFlight.has(key) || (notBefore.get(key) ?? 0) > clock.now()) continue;
        while (inFlight.size >= CONCURRENCY) await Promise.race(inFlight.values());
        const delivery = deliver(key)
          .catch((error) => logger.warn(`webhook ${key.slice(WEBHOOK_OUTBOX_PREFIX.length)}: ${(error as Error).message}`))
          .finally(() => inFlight.delete(key));
        inFlight.set(key, delivery);
      }
      if (!page.more) return;
      after = page.keys[page.keys.length - 1];
    }
  };

  /** Runs a sweep now, or once more after the one running. */
  const wake = () => {
    if (closing.signal.aborted) return;
    if (sweeping) {
      again = true;
      return;
    }
    if (timer) clock.clearTimeout(timer);
    sweeping = sweep()
      .catch((error) => logger.warn(`webhook outbox: ${(error as Error).message}`))
      .finally(() => {
        sweeping = null;
        if (again) {
          again = false;
          wake();
        } else if (!closing.signal.aborted) timer = clock.setTimeout(wake, pollMs, true);
      });
  };

  return {
    start: wake,
    kick: wake,
    async close() {
      closing.abort();
      if (timer) clock.clearTimeout(timer);
      await sweeping;
      await Promise.allSettled(inFlight.values());
    },
  };
}

/** An error message with `url` in it, if it is, redacted. */
function redactUrlsIn(message: string, url: string): string {
  return message.split(url).join(redactUrl(url));
}
