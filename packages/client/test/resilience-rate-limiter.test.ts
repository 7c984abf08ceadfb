import { describe, expect, it } from 'vitest';
import { PeerlbError } from '@peerlb/registry';
import { RateLimitedError } from '../src/resilience/index.js';

describe('RateLimitedError', () => {
  it('carries a stable code, the caller and retryAfterMs', () => {
    const err = new RateLimitedError('billing', 250);
    expect(err).toBeInstanceOf(PeerlbError);
    expect(err.code).toBe('PEERLB_RATE_LIMITED');
    expect(err.name).toBe('RateLimitedError');
    expect(err.caller).toBe('billing');
    expect(err.retryAfterMs).toBe(250);
    expect(err.message).toContain('250 ms');
  });

  it('keeps a long caller key out of the message, not off the error', () => {
    const caller = 'x'.repeat(500);
    const err = new RateLimitedError(caller, 1);
    expect(err.caller).toBe(caller);
    expect(err.message.length).toBeLessThan(200);
  });
});
