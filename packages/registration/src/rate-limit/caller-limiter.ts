import type { IncomingMessage } from 'node:http';
import { InvalidOptionsError } from '@peerlb/registry';
import { CALLER_HEADER, CallerRateLimiter, isValidCaller, RateLimitOptionsError } from '@peerlb/rate-limit';

export { CALLER_HEADER };

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

/** The serving side's per-caller limit, keyed from the HTTP request (buckets: `CallerRateLimiter`). */
export interface RequestRateLimiter {
  /** Takes one token from `key`'s bucket. */
  take(key: string): RateLimitDecision;
  /** Takes one token for the caller of `req`. */
  check(req: IncomingMessage): RateLimitDecision;
  /** Callers currently remembered. */
  readonly size: number;
}

/**
 * The caller identity of a request: the `x-peerlb-caller` header when it is a valid caller
 * (what a peerlb client sends), otherwise the remote address. The header is a label that
 * cooperating clients send, not an authentication: a caller that lies about it only changes
 * which bucket it drains.
 */
export function callerKeyOf(req: IncomingMessage): string {
  const header = req.headers[CALLER_HEADER];
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (value !== undefined && value.length > 0 && isValidCaller(value)) return `caller:${value}`;
  return `addr:${req.socket.remoteAddress ?? 'unknown'}`;
}

/**
 * The serving side of the per-caller limit: the one `CallerRateLimiter` of `@peerlb/rate-limit`
 * (the client's too), keyed from the HTTP request and read against its own clock.
 */
export function createRequestRateLimiter(options: RateLimitOptions, field = 'rateLimit'): RequestRateLimiter {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(field, 'must be an object');
  if (options.key !== undefined && typeof options.key !== 'function') {
    throw new InvalidOptionsError(`${field}.key`, 'must be a function (req) => string');
  }
  if (options.now !== undefined && typeof options.now !== 'function') {
    throw new InvalidOptionsError(`${field}.now`, 'must be a function returning milliseconds');
  }
  const buckets = callerRateLimiter(options, field);
  const keyOf = options.key ?? callerKeyOf;
  const now = options.now ?? (() => performance.now());

  const takeFor = (key: string): RateLimitDecision => {
    const decision = buckets.take(key, now());
    return { allowed: decision.allowed, key, retryAfterMs: decision.allowed ? 0 : decision.retryAfterMs };
  };

  return {
    take: takeFor,
    check: (req) => takeFor(keyOf(req)),
    get size() {
      return buckets.size;
    },
  };
}

/** The buckets; their options error is re-thrown as this package's `InvalidOptionsError`. */
function callerRateLimiter(options: RateLimitOptions, field: string): CallerRateLimiter {
  try {
    return new CallerRateLimiter(
      {
        ratePerSec: options.ratePerSec,
        ...(options.burst !== undefined ? { burst: options.burst } : {}),
        ...(options.maxCallers !== undefined ? { maxCallers: options.maxCallers } : {}),
      },
      field,
    );
  } catch (err) {
    if (err instanceof RateLimitOptionsError) throw new InvalidOptionsError(err.field, err.reason);
    throw err;
  }
}
