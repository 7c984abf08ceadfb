import { leastRequestsLoad } from './load-metrics.js';
import { costOf, twoChoices, type LoadsOf } from './p2c.js';
import type { Balancer } from './types.js';

/**
 * Least requests as P2C over the in-flight count (Envoy's LEAST_REQUEST with two choices),
 * not a full scan: O(1) per pick instead of O(n), and near-ties are broken at random instead of
 * always landing on the first of the least-loaded peers.
 */
export function leastRequests(): Balancer {
  return {
    name: 'least-requests',
    metric: leastRequestsLoad(),
    build: (peers) => twoChoices(peers, inFlightLoads),
    cost: costOf(inFlightLoads),
  };
}

const inFlightLoads: LoadsOf = (peers) => {
  const trackers = peers.map((peer) => peer.tracker);
  return (i) => trackers[i]!.inFlight;
};
