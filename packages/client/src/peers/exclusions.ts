import type { Peer } from './peer.js';
import type { ServicePeers } from './service-peers.js';

/**
 * Why a peer is not picked now. One vocabulary for `client.explain()`, `client.stats()` and the
 * `peerlb.client.peers` metric (its `peerlb.peer.state` attribute), so the three agree:
 *
 * - `breaker_open`: its circuit breaker refuses calls (open, or half-open with its trial taken);
 * - `ejected`: outlier detection took it out for a while after consecutive failures;
 * - `retry_after`: it answered 429/503 with `Retry-After`, and that time has not passed;
 * - `max_concurrency`: it has `maxConcurrentPerPeer` requests in flight.
 *
 * The first three take a peer out of the picker (unless panic mode puts every peer back); the
 * last is checked at each pick.
 */
export type ExclusionReason = 'breaker_open' | 'ejected' | 'retry_after' | 'max_concurrency';

/** The state a peer is counted under by the `peerlb.client.peers` metric: its first exclusion, or `healthy`. */
export type PeerState = 'healthy' | ExclusionReason;

export const PEER_STATES: readonly PeerState[] = ['healthy', 'breaker_open', 'ejected', 'retry_after', 'max_concurrency'];

/** Every reason `peer` is excluded at `now` (clock ms), in the order of `ExclusionReason`. Empty: pickable. */
export function exclusionsOf(svc: ServicePeers, peer: Peer, now: number): ExclusionReason[] {
  const reasons: ExclusionReason[] = [];
  const breaker = peer.breaker;
  if (breaker !== undefined && (breaker.state === 'open' || !breaker.allowsCall)) reasons.push('breaker_open');
  if (svc.isEjected(peer)) reasons.push('ejected');
  if (peer.avoidUntil > now) reasons.push('retry_after');
  if (peer.tracker.inFlight >= svc.maxConcurrentPerPeer) reasons.push('max_concurrency');
  return reasons;
}

/** The state `peer` is counted under: its first exclusion, or `healthy`. */
export function peerStateOf(svc: ServicePeers, peer: Peer, now: number): PeerState {
  return exclusionsOf(svc, peer, now)[0] ?? 'healthy';
}
