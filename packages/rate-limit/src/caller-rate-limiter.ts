import { RateLimitOptionsError } from './errors.js';
import { fullBucket, takeToken, type BucketConfig, type BucketState } from './token-bucket.js';

export interface CallerRateLimitOptions {
  /** Sustained requests per second per caller. Required. */
  ratePerSec: number;
  /** Requests a caller may send at once after being idle. Default: `ratePerSec`, at least 1. */
  burst?: number;
  /** Callers remembered at once; the least recently seen is forgotten first. Default 10 000. */
  maxCallers?: number;
}

export type RateDecision = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

const ALLOWED: RateDecision = Object.freeze({ allowed: true });

/**
 * THE per-caller rate limiter of peerlb (the client's `rateLimit` and the serving side's both use
 * it): a token bucket per caller key, callers independent, memory bounded by an LRU of `maxCallers`
 * buckets. An evicted caller comes back with a FULL bucket: the price of the bound, and it only
 * ever errs towards letting a request through. Explicit `now` (a monotonic clock such as
 * `performance.now()`), no timers.
 */
export class CallerRateLimiter {
  readonly #config: BucketConfig;
  readonly #maxCallers: number;
  // A Map iterates in insertion order: re-inserting a caller on each take keeps it an LRU.
  readonly #buckets = new Map<string, BucketState>();

  constructor(options: CallerRateLimitOptions, field = 'rateLimit') {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new RateLimitOptionsError(field, 'must be an object');
    }
    if (options.ratePerSec === undefined) throw new RateLimitOptionsError(`${field}.ratePerSec`, 'is required');
    const ratePerSec = positiveNumber(`${field}.ratePerSec`, options.ratePerSec, 0);
    const burst = options.burst === undefined ? Math.max(1, ratePerSec) : atLeast(`${field}.burst`, options.burst, 1);
    const maxCallers = options.maxCallers === undefined ? 10_000 : atLeast(`${field}.maxCallers`, options.maxCallers, 1);
    if (!Number.isInteger(maxCallers)) {
      throw new RateLimitOptionsError(`${field}.maxCallers`, `must be an integer, got ${maxCallers}`);
    }
    this.#maxCallers = maxCallers;
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
    return waitMs === 0 ? ALLOWED : { allowed: false, retryAfterMs: waitMs };
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

function positiveNumber(field: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= min) {
    throw new RateLimitOptionsError(field, `must be a finite number > ${min}, got ${String(value)}`);
  }
  return value;
}

function atLeast(field: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new RateLimitOptionsError(field, `must be a finite number >= ${min}, got ${String(value)}`);
  }
  return value;
}
