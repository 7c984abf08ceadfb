import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { CALLER_HEADER, callerKeyOf, createRequestRateLimiter } from '../src/index.js';

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
    const limiter = createRequestRateLimiter({ ratePerSec: 1, burst: 2, now: () => now });
    const a = req({ [CALLER_HEADER]: 'a' });
    const b = req({ [CALLER_HEADER]: 'b' });
    expect([limiter.check(a), limiter.check(a), limiter.check(a)].map((d) => d.allowed)).toEqual([true, true, false]);
    expect(limiter.check(b).allowed).toBe(true);
    expect(limiter.check(a).retryAfterMs).toBe(1000);
    now = 1000;
    expect(limiter.check(a).allowed).toBe(true);
  });

  it('remembers at most maxCallers, forgetting the least recently seen', () => {
    const limiter = createRequestRateLimiter({ ratePerSec: 1, burst: 1, maxCallers: 100, now: () => 0 });
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
