import { peakEwma, validateLoadMetric } from './load-metrics.js';
import { optionsObject } from '@peerlb/registry';
import { ALL_EXCLUDED, NO_PEERS, snapshotOf } from './pick-results.js';
import { sampleIndex } from './sample.js';
import type { Balancer, LoadMetric, LoadReader, PickablePeer, PickContext, Picker, PickResult } from './types.js';

export interface P2cOptions {
  /** How peers are tracked and compared. Default `peakEwma()`. */
  metric?: LoadMetric;
}

/**
 * Power of two choices: draw two distinct peers at random, take the less loaded (by
 * `tracker.load(now)`). O(1), no allocation per pick, and it avoids the herding of "always the
 * least loaded" when many clients share stale load views. The default balancer.
 */
export function p2c(options?: P2cOptions): Balancer {
  const o = optionsObject('p2c', options);
  const metric = o.metric === undefined ? peakEwma() : validateLoadMetric('p2c.metric', o.metric);
  // The metric's own fast path when it has one (peak-EWMA reads its shared table), else trackers.
  const loads: LoadsOf = metric.loadsOf === undefined ? trackerLoads : (peers) => metric.loadsOf!(peers) ?? trackerLoads(peers);
  return {
    name: 'p2c',
    metric,
    build: (peers) => twoChoices(peers, loads),
  };
}

/** Reads a snapshot's loads: `loadsOf(peers)` runs once per snapshot, the function it returns on every pick. */
export type LoadsOf = (peers: readonly PickablePeer[]) => LoadReader;

/** Any metric: each tracker's own `load(now)`. */
export const trackerLoads: LoadsOf = (peers) => {
  const trackers = peers.map((peer) => peer.tracker);
  return (i, now) => trackers[i]!.load(now);
};

/**
 * P2C over a snapshot of `input`; `loadsOf` says how to read a peer's load (lower wins).
 *
 * Each pick returns a new result object. A frozen result per peer, made with the snapshot, saved
 * that small allocation but cost a cache miss when the caller read it: among 10,000 peers that
 * miss was most of the pick (~150 ns of ~300), where a fresh object is in cache by construction.
 */
export function twoChoices<P extends PickablePeer>(input: readonly P[], loadsOf: LoadsOf): Picker<P> {
  const peers = snapshotOf(input);
  const loadAt = loadsOf(peers);
  return {
    size: peers.length,
    pick(ctx: PickContext): PickResult<P> {
      if (peers.length === 0) return NO_PEERS;
      const a = sampleIndex(peers, ctx.exclude, ctx.random);
      if (a < 0) return ALL_EXCLUDED;
      const b = sampleIndex(peers, ctx.exclude, ctx.random, a);
      if (ctx.compared !== undefined) ctx.compared.push(...(b >= 0 ? [peers[a]!, peers[b]!] : [peers[a]!]));
      // Ties go to `a`, itself a uniform draw, so equal peers share traffic evenly.
      const winner = b >= 0 && loadAt(b, ctx.now) < loadAt(a, ctx.now) ? b : a;
      return { kind: 'peer', peer: peers[winner]! };
    },
  };
}
