import { peakEwma, validateLoadMetric } from './load-metrics.js';
import { optionsObject } from './option-checks.js';
import { ALL_EXCLUDED, NO_PEERS, peerResults, snapshotOf } from './pick-results.js';
import { sampleIndex } from './sample.js';
import type { Balancer, LoadMetric, LoadTracker, PickablePeer, PickContext, Picker, PickResult } from './types.js';

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
  return {
    name: 'p2c',
    metric,
    build: (peers) => twoChoices(peers, (tracker, now) => tracker.load(now)),
  };
}

/**
 * The snapshot keeps the peers' trackers in their own array: a pick reads two trackers and
 * touches no peer object, which matters at 10,000 peers, where every object a pick reads is
 * likely a cache miss.
 */
export function twoChoices<P extends PickablePeer>(
  input: readonly P[],
  loadOf: (tracker: LoadTracker, now: number) => number,
): Picker<P> {
  const peers = snapshotOf(input);
  const trackers = peers.map((peer) => peer.tracker);
  const results = peerResults(peers);
  return {
    size: peers.length,
    pick(ctx: PickContext): PickResult<P> {
      if (peers.length === 0) return NO_PEERS;
      const a = sampleIndex(peers, ctx.exclude, ctx.random);
      if (a < 0) return ALL_EXCLUDED;
      const b = sampleIndex(peers, ctx.exclude, ctx.random, a);
      if (b < 0) return results[a]!;
      // Ties go to `a`, itself a uniform draw, so equal peers share traffic evenly.
      return loadOf(trackers[b]!, ctx.now) < loadOf(trackers[a]!, ctx.now) ? results[b]! : results[a]!;
    },
  };
}
