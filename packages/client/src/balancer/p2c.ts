import { peakEwma, validateLoadMetric } from './load-metrics.js';
import { booleanOption, optionsObject } from '@peerlb/registry';
import { ALL_EXCLUDED, NO_PEERS, snapshotOf } from './pick-results.js';
import { sampleIndex } from './sample.js';
import type { Balancer, LoadMetric, LoadReader, PickablePeer, PickContext, Picker, PickResult } from './types.js';

export interface P2cOptions {
  /** How peers are tracked and compared. Default `peakEwma()`. */
  metric?: LoadMetric;
  /**
   * Combine each peer's cost with the event-loop load it reports (see `loadReports` of
   * `createClient`): cost x exp(gain x (utilization - typical)). Default true.
   */
  serverLoad?: boolean;
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
  const own: LoadsOf = metric.loadsOf === undefined ? trackerLoads : (peers) => metric.loadsOf!(peers) ?? trackerLoads(peers);
  const loads = booleanOption('p2c.serverLoad', o.serverLoad, true) ? withServerLoad(own) : own;
  return {
    name: 'p2c',
    metric,
    build: (peers) => twoChoices(peers, loads),
    cost: costOf(loads),
  };
}

/** One peer's cost read the way a snapshot reads it (for `Balancer.cost`; allocates, not for picks). */
export function costOf(loads: LoadsOf): (peer: PickablePeer, now: number) => number {
  return (peer, now) => loads([peer])(0, now);
}

/** Reads a snapshot's loads: `loadsOf(peers)` runs once per snapshot, the function it returns on every pick. */
export type LoadsOf = (peers: readonly PickablePeer[]) => LoadReader;

/** Any metric: each tracker's own `load(now)`. */
export const trackerLoads: LoadsOf = (peers) => {
  const trackers = peers.map((peer) => peer.tracker);
  return (i, now) => trackers[i]!.load(now);
};

/**
 * A peer's own-view cost times what its load report says (`PeerServerLoad.factor`). Peers get
 * their report state on their first report, and the client rebuilds the picker then, so a
 * snapshot of peers that never reported reads nothing more than `inner`.
 */
export function withServerLoad(inner: LoadsOf): LoadsOf {
  return (peers) => {
    const base = inner(peers);
    const states = peers.map((peer) => peer.serverLoad);
    if (states.every((state) => state === undefined)) return base;
    return (i, now) => {
      const load = base(i, now);
      const state = states[i];
      return state === undefined ? load : load * state.factor(now);
    };
  };
}

/** How much less loaded the second draw must be to win (issue 14: equal shares). */
const TIE_MARGIN = 1.15;

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
      // Near-ties go to `a`, itself a uniform draw, so equal peers share traffic evenly: `b` must be
      // clearly less loaded. Latency noise between identical peers then does not pick a favourite.
      const winner = b >= 0 && loadAt(b, ctx.now) * TIE_MARGIN < loadAt(a, ctx.now) ? b : a;
      return { kind: 'peer', peer: peers[winner]! };
    },
  };
}
