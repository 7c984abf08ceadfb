import { InvalidOptionsError, PeerlbError } from '@peerlb/registry';
import { numberOption, optionsObject } from '../balancer/option-checks.js';
import { fullBucket, takeToken, type BucketConfig, type BucketState } from './token-bucket.js';

export interface CallerRateLimitOptions {
  /** Sustained requests per second per caller. Required. */
  ratePerSec: number;
  /** Requests a caller may send at once after being idle. Default: `ratePerSec`, at least 1. */
  burst?: number;
  /** Callers remembered at once; the least recently seen is forgotten first. Default 10 000. */
  maxCallers?: number;
}

export type RateDecision = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

const ALLOWED: RateDecision = Object.freeze({ ok: true });

/**
 * A token bucket per caller key, callers independent, memory bounded by an LRU of `maxCallers`
 * buckets. An evicted caller comes back with a FULL bucket: the price of the bound, and it only
 * ever errs towards letting a request through. Explicit `now` (a monotonic clock such as
 * `performance.now()`), no timers.
 *
 * Options, defaults, validation fields and eviction match @peerlb/registration's
 * `createCallerRateLimiter`, so both can share this class (that one adds the HTTP key and clock).
 */
export class CallerRateLimiter {
  readonly #config: BucketConfig;
  readonly #maxCallers: number;
  // A Map iterates in insertion order: re-inserting a caller on each take keeps it an LRU.
  readonly #buckets = new Map<string, BucketState>();

  constructor(options: CallerRateLimitOptions, field = 'rateLimit') {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError(field, 'must be an object');
    const o = optionsObject(field, options);
    if (o.ratePerSec === undefined) throw new InvalidOptionsError(`${field}.ratePerSec`, 'is required');
    const ratePerSec = numberOption(`${field}.ratePerSec`, o.ratePerSec, 1, { min: 0, exclusiveMin: true });
    const burst = numberOption(`${field}.burst`, o.burst, Math.max(1, ratePerSec), { min: 1 });
    this.#maxCallers = numberOption(`${field}.maxCallers`, o.maxCallers, 10_000, { min: 1, integer: true });
    this.#config = Object.freeze({ ratePerSec, burst });
  }

  /** Takes one token from `caller`'s bucket. */
  take(caller: string, now: number): RateDecision {
    let bucket = this.#buckets.get(caller);
    if (bucket === undefined) {
      bucket = fullBucket(this.#config, now);
      if (this.#buckets.size >= this.#maxCallers) {
        const oldest = this.#buckets.keys().next();
        if (oldest.done !== true) this.#buckets.delete(oldest.value);
      }
    } else {
      this.#buckets.delete(caller);
    }
    this.#buckets.set(caller, bucket);
    const waitMs = takeToken(bucket, this.#config, now);
    return waitMs === 0 ? ALLOWED : { ok: false, retryAfterMs: waitMs };
  }

  /** Whether `caller` currently has a bucket (it was seen and not evicted). */
  has(caller: string): boolean {
    return this.#buckets.has(caller);
  }

  /** Callers currently remembered. */
  get size(): number {
    return this.#buckets.size;
  }

  get config(): BucketConfig {
    return this.#config;
  }

  /** Forgets every caller. */
  clear(): void {
    this.#buckets.clear();
  }
}

const MAX_CALLER_IN_MESSAGE = 64;

/** A caller went over its rate limit; no request was sent. Retry after `retryAfterMs`. */
export class RateLimitedError extends PeerlbError {
  readonly retryAfterMs: number;
  readonly caller: string;

  constructor(caller: string, retryAfterMs: number, options?: { cause?: unknown }) {
    const shown = caller.length > MAX_CALLER_IN_MESSAGE ? `${caller.slice(0, MAX_CALLER_IN_MESSAGE)}...` : caller;
    super(
      'PEERLB_RATE_LIMITED',
      `caller ${JSON.stringify(shown)} is over its rate limit; retry after ${retryAfterMs} ms`,
      options,
    );
    this.retryAfterMs = retryAfterMs;
    this.caller = caller;
  }
}
