import type { PickContext } from '../balancer/index.js';
import { NoPeersError, type NoPeersReason, type PeerInfo } from '../errors.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';

/** A pick context a call owns and updates in place (`now` before each pick, `exclude` as needed). */
export interface PickState extends PickContext {
  now: number;
  exclude: Set<string> | undefined;
}

/**
 * Picks a peer for the next attempt, skipping (without spending an attempt) peers whose breaker
 * would refuse right now (half-open with its single trial taken), that left meanwhile, or that
 * already have `maxConcurrentPerPeer` requests in flight. Such peers are added to
 * `state.exclude`, allocated only then. Bounded by the picker's size.
 */
export function pickPeer(svc: ServicePeers, state: PickState): Peer | undefined {
  const picker = svc.picker;
  const maxInFlight = svc.maxConcurrentPerPeer;
  for (let i = 0; i <= picker.size; i++) {
    const result = picker.pick(state);
    if (result.kind !== 'peer') return undefined;
    const peer = result.peer;
    if (
      !peer.retired &&
      (peer.breaker === undefined || peer.breaker.allowsCall) &&
      peer.tracker.inFlight < maxInFlight
    ) {
      return peer;
    }
    (state.exclude ??= new Set()).add(peer.id);
  }
  return undefined;
}

/** Whether every peer in the picker is at `maxConcurrentPerPeer`: why a pick found nothing. */
export function allPeersFull(svc: ServicePeers): boolean {
  const max = svc.maxConcurrentPerPeer;
  return max !== Infinity && svc.eligibleList.length > 0 && svc.eligibleList.every((p) => p.tracker.inFlight >= max);
}

/** The error for a first pick that found nothing, saying why (see `NoPeersReason`). */
export function noPeersError(svc: ServicePeers, peersTried: readonly PeerInfo[]): NoPeersError {
  const service = svc.service;
  const [reason, message]: [NoPeersReason, string] = svc.isExpired
    ? ['registry-unavailable', `the registry has been failing for "${service}" for longer than the allowed staleness`]
    : svc.peerList.length === 0
      ? ['no-instances', `service "${service}" has no healthy instance`]
      : allPeersFull(svc)
        ? ['all-busy', `every peer of "${service}" has ${svc.maxConcurrentPerPeer} requests in flight (maxConcurrentPerPeer)`]
        : ['all-refused', `no peer of "${service}" can take a request now (breakers open)`];
  return new NoPeersError(message, {
    service,
    peersTried,
    reason,
    cause: svc.isExpired ? svc.watch.error : undefined,
  });
}
