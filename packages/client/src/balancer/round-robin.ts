import { leastRequestsLoad } from './load-metrics.js';
import { ALL_EXCLUDED, NO_PEERS, peerResults, snapshotOf } from './pick-results.js';
import { randomIndex } from './random.js';
import type { Balancer, PickablePeer, PickContext, Picker, PickResult } from './types.js';

/**
 * Strict rotation. Each snapshot keeps one cursor shared by all its picks; it starts at a random
 * peer (drawn on the first pick), so many clients rebuilding at the same moment do not all start
 * on the same peer. Excluded peers are skipped and the cursor moves past them.
 */
export function roundRobin(): Balancer {
  return { name: 'round-robin', metric: leastRequestsLoad(), build: rotation };
}

function rotation<P extends PickablePeer>(input: readonly P[]): Picker<P> {
  const peers = snapshotOf(input);
  const results = peerResults(peers);
  const n = peers.length;
  let cursor = -1;
  return {
    size: n,
    pick(ctx: PickContext): PickResult<P> {
      if (n === 0) return NO_PEERS;
      if (cursor < 0) cursor = randomIndex(ctx.random, n);
      const exclude = ctx.exclude;
      for (let step = 0; step < n; step++) {
        const i = cursor;
        cursor = i + 1 === n ? 0 : i + 1;
        if (exclude === undefined || !exclude.has(peers[i]!.id)) return results[i]!;
      }
      return ALL_EXCLUDED;
    },
  };
}
