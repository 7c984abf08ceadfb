import { describe, expect, it } from 'vitest';
import { p2c, peakEwma, seededRandom, type PeakEwmaOptions } from '../src/balancer/index.js';
import { makePeers, type TestPeer } from './balancer-support.js';

/**
 * One caller, one request at a time (each answer arrives before the next call), the way the
 * issue measured it. `latency(peer, i)` gives each answer's latency.
 */
function sequential(options: PeakEwmaOptions, n: number, calls: number, latency: (peer: number, call: number) => number): number[] {
  const balancer = p2c({ metric: peakEwma(options) });
  const peers = makePeers(n, balancer.metric);
  const picker = balancer.build(peers);
  const random = seededRandom(14);
  const noise = seededRandom(41);
  const counts = new Array<number>(n).fill(0);
  let now = 0;
  for (let i = 0; i < calls; i++) {
    const r = picker.pick({ random, now });
    if (r.kind !== 'peer') throw new Error(r.reason);
    const index = peers.indexOf(r.peer as TestPeer);
    counts[index]!++;
    const done = r.peer.tracker.start(now);
    // Latency noise of a real loopback call: +-30 %.
    now += latency(index, i) * (0.7 + 0.6 * noise());
    done({ kind: 'success', latencyMs: latency(index, i) * (0.7 + 0.6 * noise()) }, now);
    now += 0.05;
  }
  return counts;
}

// The first answer of a fresh caller pays for its cold start (connection, JIT): 30 ms, not 1.
const coldFirst = (_peer: number, call: number) => (call === 0 ? 30 : 1);

describe('equal shares for identical peers (issue 14)', () => {
  it('two identical peers called one request at a time split near-evenly', () => {
    for (const calls of [200, 2000]) {
      const [a, b] = sequential({}, 2, calls, coldFirst);
      expect(a! / calls).toBeGreaterThan(0.35);
      expect(b! / calls).toBeGreaterThan(0.35);
    }
  });

  it('regression: without the stale decay the cold-started peer is left out for a long time', () => {
    const [a, b] = sequential({ staleSamples: 0 }, 2, 2000, coldFirst);
    expect(Math.min(a!, b!) / 2000).toBeLessThan(0.2);
  });

  it('still keeps a ten times slower peer at a small share', () => {
    const counts = sequential({}, 3, 3000, (peer) => (peer === 0 ? 10 : 1));
    expect(counts[0]! / 3000).toBeLessThan(0.08);
    expect(counts[1]! / 3000).toBeGreaterThan(0.35);
    expect(counts[2]! / 3000).toBeGreaterThan(0.35);
  });

  it('names the field of a bad staleSamples', () => {
    expect(() => peakEwma({ staleSamples: -1 })).toThrow(/peakEwma\.staleSamples/);
  });
});
