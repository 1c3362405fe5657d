/**
 * A target for scheduling tests: one per node, recording which node sent
 * which line and when, counting each batch's requests in flight, and holding
 * the requests of gated batches until the test lets them go. A custom_id is
 * `<group>-<n>`; the group names a batch for the counts and the gate (lines
 * of the group `bad` are answered 400). Every answer comes in a later
 * macrotask, as a real upstream's would.
 */
import { type Target, TargetError, type TargetRequest, type TargetResponse } from "../../src/targets/types.ts";

export interface SentLine {
  node: number;
  id: string;
  group: string;
}

export class RecordingTarget {
  readonly sent: SentLine[] = [];
  /** Groups whose requests wait at the gate. */
  readonly gated = new Set<string>();
  /** Most requests of each group in flight at once. */
  readonly peak = new Map<string, number>();
  readonly #inFlight = new Map<string, number>();
  #held: (() => void)[] = [];
  #arrivals: (() => void)[] = [];

  constructor(private readonly latencyMs = 0) {}

  /** The target of node `node`. */
  targetOf = (node: number): Target => ({
    description: `recording target of node ${node}`,
    send: (request) => this.#send(node, request),
  });

  /** The lines `node` sent, in order. */
  sentBy(node: number): SentLine[] {
    return this.sent.filter((line) => line.node === node);
  }

  /** Lets every held request go; returns how many. */
  releaseHeld(): number {
    const held = this.#held;
    this.#held = [];
    for (const release of held) release();
    return held.length;
  }

  /** Requests waiting at the gate now. */
  get heldCount(): number {
    return this.#held.length;
  }

  /** Resolves once more than `count` lines have been sent, or after `ms` (real time) — whichever comes first. */
  async arrivalBeyond(count: number, ms = 1_000): Promise<void> {
    if (this.sent.length > count) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#arrivals.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async #send(node: number, request: TargetRequest): Promise<TargetResponse> {
    const body = JSON.parse(request.bodyText);
    const id = String(body.messages[0].content);
    const group = id.split("-")[0];
    this.sent.push({ node, id, group });
    for (const wake of this.#arrivals.splice(0)) wake();
    const now = (this.#inFlight.get(group) ?? 0) + 1;
    this.#inFlight.set(group, now);
    this.peak.set(group, Math.max(this.peak.get(group) ?? 0, now));
    try {
      // An abandoned request ends as a real upstream's would (a shutdown, a cancel).
      const aborted = new Promise<never>((_, reject) => {
        if (request.signal.aborted) reject(new TargetError("aborted", "aborted"));
        request.signal.addEventListener("abort", () => reject(new TargetError("aborted", "aborted")), { once: true });
      });
      aborted.catch(() => {});
      if (this.gated.has(group)) await Promise.race([new Promise<void>((resolve) => this.#held.push(resolve)), aborted]);
      await Promise.race([new Promise((resolve) => setTimeout(resolve, this.latencyMs)), aborted]);
    } finally {
      this.#inFlight.set(group, this.#inFlight.get(group)! - 1);
    }
    const answer = { id: `chatcmpl-${id}`, object: "chat.completion", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } };
    if (group === "bad") {
      const error = { error: { message: "bad request", type: "invalid_request_error" } };
      return { status: 400, body: error, bodyJson: JSON.stringify(error), json: true, requestId: null, retryAfterMs: null };
    }
    return { status: 200, body: answer, bodyJson: JSON.stringify(answer), json: true, requestId: null, retryAfterMs: null };
  }
}
