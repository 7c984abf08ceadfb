import type { PickablePeer, PickResult } from './types.js';

// Shared, frozen results: a picker returns them instead of allocating one per pick.
export const NO_PEERS = Object.freeze({ kind: 'unavailable', reason: 'no-peers' } as const);
export const ALL_EXCLUDED = Object.freeze({ kind: 'unavailable', reason: 'all-excluded' } as const);

/** One frozen `{ kind: 'peer', peer }` per peer of a snapshot, built once with the snapshot. */
export function peerResults<P extends PickablePeer>(peers: readonly P[]): readonly PickResult<P>[] {
  return Object.freeze(peers.map((peer) => Object.freeze({ kind: 'peer', peer } as const)));
}

/** A snapshot's own copy of the peer list, so a caller mutating its array cannot change a picker. */
export function snapshotOf<P extends PickablePeer>(peers: readonly P[]): readonly P[] {
  return Object.freeze(peers.slice());
}
