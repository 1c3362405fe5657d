/**
 * Budgets by model: upstreams limit requests and tokens per minute per model,
 * so a rule's budget applies to each model its pattern matches, apart (the
 * first matching rule counts; a model no rule matches has no budget of its
 * own). A cluster's nodes each spend their share, as of the global budgets.
 *
 * @module
 */
import type { Clock } from "../../shared/clock.ts";
import { TokenBucket } from "./token_bucket.ts";
import { globMatches } from "../../shared/glob.ts";

/** A budget for the models matching `pattern` (`*` stands for any characters). */
export interface ModelBudget {
  pattern: string;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

interface Buckets {
  requests: TokenBucket | undefined;
  tokens: TokenBucket | undefined;
  rule: ModelBudget;
}


/** The budgets of every model seen so far. */
export class ModelBudgets {
  readonly #rules: readonly ModelBudget[];
  readonly #clock: Clock;
  /** Buckets by model (null: no rule matches it). */
  readonly #models = new Map<string, Buckets | null>();
  #share = 1;

  constructor(rules: readonly ModelBudget[], clock: Clock) {
    this.#rules = rules;
    this.#clock = clock;
  }

  /** Whether any rule is set. */
  get any(): boolean {
    return this.#rules.length > 0;
  }

  #bucketsOf(model: string | undefined): Buckets | null {
    if (model === undefined || !this.#rules.length) return null;
    let found = this.#models.get(model);
    if (found === undefined) {
      const rule = this.#rules.find((candidate) => globMatches(candidate.pattern, model));
      found = rule
        ? {
          rule,
          requests: rule.requestsPerMinute ? new TokenBucket(rule.requestsPerMinute * this.#share, this.#clock) : undefined,
          tokens: rule.tokensPerMinute ? new TokenBucket(rule.tokensPerMinute * this.#share, this.#clock) : undefined,
        }
        : null;
      this.#models.set(model, found);
    }
    return found;
  }

  /** Milliseconds until a request of `model` estimated at `tokens` fits its model's budget (0: now). */
  waitFor(model: string | undefined, tokens: number): number {
    const buckets = this.#bucketsOf(model);
    return buckets ? Math.max(buckets.requests?.waitFor(1) ?? 0, buckets.tokens?.waitFor(tokens) ?? 0) : 0;
  }

  /** Spends a request and its estimated tokens. */
  spend(model: string | undefined, tokens: number): void {
    const buckets = this.#bucketsOf(model);
    buckets?.requests?.spend(1);
    buckets?.tokens?.spend(tokens);
  }

  /** Corrects the estimate by the tokens the answer reported. */
  correct(model: string | undefined, estimated: number, actual: number): void {
    const tokens = this.#bucketsOf(model)?.tokens;
    if (!tokens) return;
    if (actual > estimated) tokens.spend(actual - estimated);
    else tokens.refund(estimated - actual);
  }

  /** Spends only `share` of each budget from now on. */
  share(share: number): void {
    this.#share = share;
    for (const buckets of this.#models.values()) {
      if (!buckets) continue;
      if (buckets.rule.requestsPerMinute) buckets.requests!.setRate(buckets.rule.requestsPerMinute * share);
      if (buckets.rule.tokensPerMinute) buckets.tokens!.setRate(buckets.rule.tokensPerMinute * share);
    }
  }
}
