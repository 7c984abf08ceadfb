import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { eligiblePeers, validatePanicThreshold } from '../src/balancer/index.js';

const peers = ['a', 'b', 'c', 'd'];
const healthyOf = (ids: string[]) => (p: string) => ids.includes(p);

describe('eligiblePeers (distributor with panic mode)', () => {
  it('uses every peer, without panic, when all are healthy (and returns the same array)', () => {
    const r = eligiblePeers(peers, () => true);
    expect(r).toEqual({ peers, panic: false, healthy: 4, total: 4 });
    expect(r.peers).toBe(peers);
  });

  it('keeps only the healthy peers while their fraction is at or above the threshold', () => {
    expect(eligiblePeers(peers, healthyOf(['a', 'c', 'd']))).toEqual({
      peers: ['a', 'c', 'd'],
      panic: false,
      healthy: 3,
      total: 4,
    });
    // Exactly at the threshold (2/4 = 0.5) is not below it.
    expect(eligiblePeers(peers, healthyOf(['b', 'd']), 0.5)).toMatchObject({ peers: ['b', 'd'], panic: false });
  });

  it('panics below the threshold: every peer is used again', () => {
    const r = eligiblePeers(peers, healthyOf(['b']), 0.5);
    expect(r.panic).toBe(true);
    expect(r.peers).toEqual(peers);
    expect(r.healthy).toBe(1);
    expect(eligiblePeers(peers, () => false).panic).toBe(true);
    expect(eligiblePeers(peers, () => false).peers).toEqual(peers);
  });

  it('honours a custom threshold, and 0 disables panic', () => {
    expect(eligiblePeers(peers, healthyOf(['a', 'b', 'c']), 0.8).panic).toBe(true);
    expect(eligiblePeers(peers, () => false, 0)).toEqual({ peers: [], panic: false, healthy: 0, total: 4 });
  });

  it('zero peers: empty, no panic', () => {
    expect(eligiblePeers([], () => true)).toEqual({ peers: [], panic: false, healthy: 0, total: 0 });
  });

  it('validates the threshold', () => {
    expect(validatePanicThreshold('client.healthyPanicThreshold', undefined)).toBe(0.5);
    expect(validatePanicThreshold('x', 0.3)).toBe(0.3);
    expect(() => validatePanicThreshold('client.healthyPanicThreshold', 1.5)).toThrow(InvalidOptionsError);
    expect(() => validatePanicThreshold('client.healthyPanicThreshold', -0.1)).toThrow(/healthyPanicThreshold/);
  });
});
