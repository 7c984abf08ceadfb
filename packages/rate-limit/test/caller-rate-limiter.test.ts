import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CALLER_HEADER,
  CallerRateLimiter,
  RateLimitOptionsError,
  fullBucket,
  isValidCaller,
  refillBucket,
  takeToken,
} from '../src/index.js';

describe('CallerRateLimiter', () => {
  it('lets a burst through, then refuses with the time until the next token', () => {
    const limiter = new CallerRateLimiter({ ratePerSec: 2, burst: 3 });
    for (let i = 0; i < 3; i++) expect(limiter.take('a', 0)).toEqual({ allowed: true });
    expect(limiter.take('a', 0)).toEqual({ allowed: false, retryAfterMs: 500 });
    expect(limiter.take('a', 499)).toEqual({ allowed: false, retryAfterMs: 1 });
    expect(limiter.take('a', 500)).toEqual({ allowed: true });
    expect(limiter.take('a', 500)).toEqual({ allowed: false, retryAfterMs: 500 });
  });

  it('defaults the burst to the rate (at least 1)', () => {
    const five = new CallerRateLimiter({ ratePerSec: 5 });
    for (let i = 0; i < 5; i++) expect(five.take('a', 0).allowed).toBe(true);
    expect(five.take('a', 0).allowed).toBe(false);
    const slow = new CallerRateLimiter({ ratePerSec: 0.5 });
    expect(slow.take('a', 0).allowed).toBe(true);
    expect(slow.take('a', 0)).toEqual({ allowed: false, retryAfterMs: 2000 });
  });

  it('keeps callers independent', () => {
    const limiter = new CallerRateLimiter({ ratePerSec: 1, burst: 2 });
    expect(limiter.take('a', 0).allowed).toBe(true);
    expect(limiter.take('a', 0).allowed).toBe(true);
    expect(limiter.take('a', 0).allowed).toBe(false);
    expect(limiter.take('b', 0).allowed).toBe(true);
    expect(limiter.take('b', 0).allowed).toBe(true);
    expect(limiter.take('b', 0).allowed).toBe(false);
    expect(limiter.take('c', 0).allowed).toBe(true);
  });

  it('retryAfterMs is exact: waiting that long always succeeds, 1 ms less always fails', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 5000, noNaN: true }),
        fc.double({ min: 1, max: 20, noNaN: true }),
        fc.array(fc.double({ min: 0, max: 3000, noNaN: true }), { minLength: 1, maxLength: 30 }),
        (ratePerSec, burst, gaps) => {
          const limiter = new CallerRateLimiter({ ratePerSec, burst });
          const times = timesOf(gaps);
          times.forEach((now, i) => {
            const r = limiter.take('k', now);
            if (r.allowed) return;
            expect(r.retryAfterMs).toBeGreaterThanOrEqual(1);
            expect(Number.isInteger(r.retryAfterMs)).toBe(true);
            // Probe on a replayed copy, so the real bucket is not disturbed.
            if (r.retryAfterMs > 1) expect(probe(ratePerSec, burst, times, i, now + r.retryAfterMs - 1)).toBe(false);
            expect(probe(ratePerSec, burst, times, i, now + r.retryAfterMs)).toBe(true);
          });
        },
      ),
      { numRuns: 300, seed: 20250101 },
    );
  });

  it('has bounded memory: the least recently used caller is evicted, and comes back with a full bucket', () => {
    const limiter = new CallerRateLimiter({ ratePerSec: 1, burst: 1, maxCallers: 2 });
    expect(limiter.take('a', 0).allowed).toBe(true);
    expect(limiter.take('b', 0).allowed).toBe(true);
    expect(limiter.take('a', 0).allowed).toBe(false); // touches a: b is now the oldest
    expect(limiter.take('c', 0).allowed).toBe(true); // evicts b
    expect(limiter.size).toBe(2);
    expect(limiter.has('b')).toBe(false);
    expect(limiter.has('a')).toBe(true);
    // a is still limited; b was forgotten and starts full.
    expect(limiter.take('a', 0).allowed).toBe(false);
    expect(limiter.take('b', 0).allowed).toBe(true);
    expect(limiter.has('c')).toBe(false);
  });

  it('stays within maxCallers under many callers', () => {
    const limiter = new CallerRateLimiter({ ratePerSec: 10, maxCallers: 100 });
    for (let i = 0; i < 10_000; i++) limiter.take(`caller-${i}`, i);
    expect(limiter.size).toBe(100);
    expect(limiter.has('caller-9999')).toBe(true);
    expect(limiter.has('caller-9899')).toBe(false);
  });

  it('a clock stepping back neither mints nor burns tokens', () => {
    const limiter = new CallerRateLimiter({ ratePerSec: 1, burst: 1 });
    expect(limiter.take('a', 10_000).allowed).toBe(true);
    expect(limiter.take('a', 5_000)).toEqual({ allowed: false, retryAfterMs: 1000 });
    expect(limiter.take('a', 11_000).allowed).toBe(true);
  });

  it('validates its options with the field named', () => {
    expect(() => new CallerRateLimiter({} as never)).toThrow(/rateLimit\.ratePerSec/);
    expect(() => new CallerRateLimiter({ ratePerSec: 0 })).toThrow(RateLimitOptionsError);
    expect(() => new CallerRateLimiter({ ratePerSec: -1 })).toThrow(/rateLimit\.ratePerSec/);
    expect(() => new CallerRateLimiter({ ratePerSec: 1, burst: 0.5 })).toThrow(/rateLimit\.burst/);
    expect(() => new CallerRateLimiter({ ratePerSec: 1, maxCallers: 0 })).toThrow(/rateLimit\.maxCallers/);
    expect(() => new CallerRateLimiter({ ratePerSec: 1, maxCallers: 1.5 }, 'client.rateLimit')).toThrow(
      /client\.rateLimit\.maxCallers/,
    );
    expect(() => new CallerRateLimiter(null as never)).toThrow(RateLimitOptionsError);
    // Its own error class, with the code and field every peerlb options error has.
    const err = (() => {
      try {
        new CallerRateLimiter({ ratePerSec: 1, burst: 0 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ code: 'PEERLB_INVALID_OPTIONS', field: 'rateLimit.burst' });
  });
});

describe('takeToken (shared bucket arithmetic)', () => {
  it('updates the state in place and answers 0 or the wait', () => {
    const config = { ratePerSec: 4, burst: 2 };
    const state = fullBucket(config, 0);
    expect(takeToken(state, config, 0)).toBe(0);
    expect(takeToken(state, config, 0)).toBe(0);
    expect(state.tokens).toBe(0);
    expect(takeToken(state, config, 0)).toBe(250);
    expect(takeToken(state, config, 100)).toBe(150);
    expect(state).toEqual({ tokens: 0.4, at: 100 });
    expect(takeToken(state, config, 10_000)).toBe(0);
    expect(state.tokens).toBe(1);
  });
});

describe('token bucket math', () => {
  const config = { ratePerSec: 2, burst: 3 };

  it('never refills past the burst', () => {
    const state = { tokens: 0, at: 0 };
    refillBucket(state, config, 1_000_000);
    expect(state.tokens).toBe(3);
  });

  it('holds the long-run rate: over 10 s at most burst + rate * 10 requests pass', () => {
    const state = fullBucket(config, 0);
    let allowed = 0;
    for (let t = 0; t <= 10_000; t += 7) if (takeToken(state, config, t) === 0) allowed++;
    expect(allowed).toBeLessThanOrEqual(3 + 2 * 10);
    expect(allowed).toBeGreaterThanOrEqual(2 * 10);
  });
});

describe('caller identity', () => {
  it('accepts 1..128 visible ASCII characters and nothing else', () => {
    expect(CALLER_HEADER).toBe('x-peerlb-caller');
    for (const ok of ['billing', 'a', 'x'.repeat(128), 'user:42/eu']) expect(isValidCaller(ok)).toBe(true);
    for (const bad of ['', 'x'.repeat(129), 'has space', 'crlf\r\nx', 'é', 42, undefined]) expect(isValidCaller(bad)).toBe(false);
  });
});

function timesOf(gaps: readonly number[]): number[] {
  let now = 1_000;
  return gaps.map((gap) => (now += gap));
}

/** A fresh limiter fed the same takes up to index `last`, then asked once more at `at`. */
function probe(ratePerSec: number, burst: number, times: readonly number[], last: number, at: number): boolean {
  const limiter = new CallerRateLimiter({ ratePerSec, burst });
  for (let i = 0; i <= last; i++) limiter.take('k', times[i]!);
  return limiter.take('k', at).allowed;
}
