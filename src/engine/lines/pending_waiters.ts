/**
 * Those waiting on a result writer: each until fewer than its limit of
 * results are pending (a limit of 1: until everything queued is durable), or
 * until the writer fails.
 *
 * @module
 */

/** The waits on one writer's pending count. */
export class PendingWaiters {
  #waiters: { limit: number; resolve(): void; reject(error: unknown): void }[] = [];

  /** Whether someone waits for everything to be durable: then nothing more is coming to wait for. */
  get draining(): boolean {
    return this.#waiters.some((waiter) => waiter.limit <= 1);
  }

  /** Resolves once {@link update} reports fewer than `limit` pending; rejects with a failure it reports. */
  wait(limit: number): Promise<void> {
    return new Promise<void>((resolve, reject) => this.#waiters.push({ limit, resolve, reject }));
  }

  /** Settles the waits that `pending` (or `failure`, when not null) answers. */
  update(pending: number, failure: unknown): void {
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const waiter = this.#waiters[i];
      if (failure !== null) waiter.reject(failure);
      else if (pending < waiter.limit || pending === 0) waiter.resolve();
      else continue;
      this.#waiters.splice(i, 1);
    }
  }
}
