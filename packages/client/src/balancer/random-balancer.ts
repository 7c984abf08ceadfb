import { leastRequestsLoad } from './load-metrics.js';
import { ALL_EXCLUDED, NO_PEERS, peerResults, snapshotOf } from './pick-results.js';
import { sampleIndex } from './sample.js';
import type { Balancer, PickablePeer, PickContext, Picker, PickResult } from './types.js';

/** Uniform random choice among the peers not excluded. */
export function random(): Balancer {
  return { name: 'random', metric: leastRequestsLoad(), build: uniform };
}

export function uniform<P extends PickablePeer>(input: readonly P[]): Picker<P> {
  const peers = snapshotOf(input);
  const results = peerResults(peers);
  return {
    size: peers.length,
    pick(ctx: PickContext): PickResult<P> {
      if (peers.length === 0) return NO_PEERS;
      const i = sampleIndex(peers, ctx.exclude, ctx.random);
      return i < 0 ? ALL_EXCLUDED : results[i]!;
    },
  };
}
