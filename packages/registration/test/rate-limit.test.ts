import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { CALLER_HEADER, callerKeyOf, createCallerRateLimiter, fullBucket, refillBucket, takeToken } from '../src/index.js';

const config = { ratePerSec: 2, burst: 3 };

describe('token bucket math', () => {
  it('allows a burst, then refuses with the time until the next token', () => {
    let state = fullBucket(config, 0);
    for (let i = 0; i < 3; i++) {
      const r = takeToken(state, config, 0);
      expect(r.allowed).toBe(true);
      state = r.state;
    }
    const refused = takeToken(state, config, 0);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBe(500);
    // Half a token after 250 ms: still refused, with 250 ms to go.
    const later = takeToken(refused.state, config, 250);
    expect(later.allowed).toBe(false);
    expect(later.retryAfterMs).toBe(250);
    expect(takeToken(later.state, config, 500).allowed).toBe(true);
  });

  it('never refills past the burst', () => {
    expect(refillBucket({ tokens: 0, at: 0 }, config, 1_000_000).tokens).toBe(3);
  });

  it('a clock stepping backwards neither mints nor burns tokens', () => {
    const back = refillBucket({ tokens: 1, at: 1000 }, config, 500);
    expect(back).toEqual({ tokens: 1, at: 1000 });
  });

  it('holds the long-run rate: over 10 s at most burst + rate * 10 requests pass', () => {
    let state = fullBucket(config, 0);
    let allowed = 0;
    for (let t = 0; t <= 10_000; t += 7) {
      const r = takeToken(state, config, t);
      state = r.state;
      if (r.allowed) allowed++;
    }
    expect(allowed).toBeLessThanOrEqual(3 + 2 * 10);
    expect(allowed).toBeGreaterThanOrEqual(2 * 10);
  });
});

function req(headers: Record<string, string | string[]>, remoteAddress = '10.0.0.1'): IncomingMessage {
  return { headers, socket: { remoteAddress } } as unknown as IncomingMessage;
}

describe('caller rate limiter', () => {
  it('keys on the x-peerlb-caller header, falling back to the remote address', () => {
    expect(CALLER_HEADER).toBe('x-peerlb-caller');
    expect(callerKeyOf(req({ [CALLER_HEADER]: 'billing' }))).toBe('caller:billing');
    expect(callerKeyOf(req({ [CALLER_HEADER]: ['billing', 'x'] }))).toBe('caller:billing');
    expect(callerKeyOf(req({}))).toBe('addr:10.0.0.1');
    expect(callerKeyOf(req({ [CALLER_HEADER]: '' }))).toBe('addr:10.0.0.1');
    expect(callerKeyOf(req({ [CALLER_HEADER]: 'x'.repeat(200) }))).toBe('addr:10.0.0.1');
    expect(callerKeyOf(req({ [CALLER_HEADER]: 'has space' }))).toBe('addr:10.0.0.1');
  });

  it('limits each caller separately', () => {
    let now = 0;
    const limiter = createCallerRateLimiter({ ratePerSec: 1, burst: 2, now: () => now });
    const a = req({ [CALLER_HEADER]: 'a' });
    const b = req({ [CALLER_HEADER]: 'b' });
    expect([limiter.check(a), limiter.check(a), limiter.check(a)].map((d) => d.allowed)).toEqual([true, true, false]);
    expect(limiter.check(b).allowed).toBe(true);
    expect(limiter.check(a).retryAfterMs).toBe(1000);
    now = 1000;
    expect(limiter.check(a).allowed).toBe(true);
  });

  it('remembers at most maxCallers, forgetting the least recently seen', () => {
    const limiter = createCallerRateLimiter({ ratePerSec: 1, burst: 1, maxCallers: 100, now: () => 0 });
    limiter.take('keep');
    for (let i = 0; i < 1000; i++) {
      limiter.take(`c${i}`);
      if (i % 10 === 0) limiter.take('keep');
    }
    expect(limiter.size).toBe(100);
    // "keep" stayed recent, so its empty bucket is still remembered: refused.
    expect(limiter.take('keep').allowed).toBe(false);
    // c0 was evicted long ago: it starts over with a full bucket.
    expect(limiter.take('c0').allowed).toBe(true);
  });
});
