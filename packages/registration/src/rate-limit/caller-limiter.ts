import type { IncomingMessage } from 'node:http';
import { InvalidOptionsError } from '@peerlb/registry';
import { fullBucket, take, type BucketConfig, type BucketState } from './token-bucket.js';

/** The header a peerlb client sends to say who is calling; the rate limiter keys on it. */
export const CALLER_HEADER = 'x-peerlb-caller';

const MAX_CALLER_KEY = 128;
// Printable ASCII only: the key ends up in logs and metrics labels.
const CALLER_KEY = /^[\x21-\x7e]+$/;

export interface RateLimitOptions {
  /** Sustained requests per second per caller. */
  ratePerSec: number;
  /** Requests a caller may send at once after being idle (bucket size). Default: `ratePerSec`, at least 1. */
  burst?: number;
  /** Callers remembered at once (least recently seen are forgotten first). Default 10 000. */
  maxCallers?: number;
  /** Who is calling. Default: the `x-peerlb-caller` header, else the remote address. */
  key?: (req: IncomingMessage) => string;
  /** Clock in ms, for tests. Default `performance.now`. */
  now?: () => number;
}

export interface RateLimitDecision {
  readonly allowed: boolean;
  readonly key: string;
  /** 0 when allowed. */
  readonly retryAfterMs: number;
}

export interface CallerRateLimiter {
  /** Takes one token from `key`'s bucket. */
  take(key: string): RateLimitDecision;
  /** Takes one token for the caller of `req`. */
  check(req: IncomingMessage): RateLimitDecision;
  /** Callers currently remembered. */
  readonly size: number;
}

/**
 * The caller identity of a request: the `x-peerlb-caller` header when it is a short printable
 * token, otherwise the remote address. The header is a label that cooperating clients send, not
 * an authentication: a caller that lies about it only changes which bucket it drains.
 */
export function callerKeyOf(req: IncomingMessage): string {
  const header = req.headers[CALLER_HEADER];
  const value = Array.isArray(header) ? header[0] : header;
  if (value !== undefined) {
    const trimmed = value.trim();
    if (trimmed.length > 0 && trimmed.length <= MAX_CALLER_KEY && CALLER_KEY.test(trimmed)) return `caller:${trimmed}`;
  }
  return `addr:${req.socket.remoteAddress ?? 'unknown'}`;
}

/**
 * A token bucket per caller with bounded memory: at most `maxCallers` buckets, least recently
 * used evicted first. An evicted caller starts again with a full bucket, which is the price of the
 * bound (it only ever errs towards letting a request through).
 */
export function createCallerRateLimiter(options: RateLimitOptions, field = 'rateLimit'): CallerRateLimiter {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(field, 'must be an object');
  const { ratePerSec } = options;
  if (typeof ratePerSec !== 'number' || !Number.isFinite(ratePerSec) || ratePerSec <= 0) {
    throw new InvalidOptionsError(`${field}.ratePerSec`, `must be a positive number, got ${String(ratePerSec)}`);
  }
  const burst = options.burst ?? Math.max(1, ratePerSec);
  if (typeof burst !== 'number' || !Number.isFinite(burst) || burst < 1) {
    throw new InvalidOptionsError(`${field}.burst`, `must be a number >= 1, got ${String(burst)}`);
  }
  const maxCallers = options.maxCallers ?? 10_000;
  if (!Number.isInteger(maxCallers) || maxCallers < 1) {
    throw new InvalidOptionsError(`${field}.maxCallers`, `must be an integer >= 1, got ${String(maxCallers)}`);
  }
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new InvalidOptionsError(`${field}.key`, 'must be a function (req) => string');
  }
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new InvalidOptionsError(`${field}.now`, 'must be a function returning milliseconds');
  }
  const config: BucketConfig = { ratePerSec, burst };
  const keyOf = options.key ?? callerKeyOf;
  const now = options.now ?? (() => performance.now());
  // A Map iterates in insertion order: deleting and re-inserting on each use keeps it an LRU.
  const buckets = new Map<string, BucketState>();

  const takeFor = (key: string): RateLimitDecision => {
    const t = now();
    const state = buckets.get(key) ?? fullBucket(config, t);
    const result = take(state, config, t);
    buckets.delete(key);
    buckets.set(key, result.state);
    if (buckets.size > maxCallers) {
      const oldest = buckets.keys().next();
      if (!oldest.done) buckets.delete(oldest.value);
    }
    return { allowed: result.allowed, key, retryAfterMs: result.retryAfterMs };
  };

  return {
    take: takeFor,
    check: (req) => takeFor(keyOf(req)),
    get size() {
      return buckets.size;
    },
  };
}
