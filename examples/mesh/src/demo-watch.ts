import type { Agent } from 'node:http';
import type { PeerStats } from '@peerlb/client';
import type { Registry } from '@peerlb/registry';
import { fetchStats } from './observe.js';
import type { ServiceName } from './protocol.js';
import { peerState } from './view.js';

/** How one instance left the view of its caller and of the registry, timed from `since`. */
export interface DepartureTimes {
  /** The caller stopped picking it (ejected, breaker open, or removed), ms after `since`. */
  outOfPickerAfterMs: number | null;
  /** What took it out of the picker first: `EJECTED 30s`, `BREAKER-OPEN`, `removed`... */
  outOfPickerBecause: string | null;
  /** The caller dropped it from its peer list (the registry reported it gone). */
  removedAfterMs: number | null;
  /** The registry stopped listing it as healthy. */
  leftRegistryAfterMs: number | null;
  /** When the caller's attempt counter for it last moved (poll resolution, ~100 ms): traffic stopped. */
  trafficStoppedAfterMs: number | null;
  /** Whether the caller was ever seen to eject it or open its breaker. */
  ejectedOrBroken: boolean;
  /** Attempts the caller sent it after `since` (each one failed and was retried elsewhere, if dead). */
  attemptsAfter: number | null;
  failedAttemptsAfter: number | null;
}

export interface DepartureWatchOptions {
  id: string;
  service: ServiceName;
  /** The caller process whose view is watched (its admin URL). */
  callerUrl: string;
  /** The caller's peer stats just before the event, to count what was sent after it. */
  peerBefore: PeerStats | undefined;
  registry: Registry;
  since: number;
  timeoutMs: number;
  agent?: Agent;
}

const POLL_MS = 100;

/**
 * Polls the caller's client view and the registry until the instance is out of both, or the time
 * is up. Never rejects: what was not seen stays null.
 */
export async function watchDeparture(o: DepartureWatchOptions): Promise<DepartureTimes> {
  const times: DepartureTimes = {
    outOfPickerAfterMs: null,
    outOfPickerBecause: null,
    removedAfterMs: null,
    leftRegistryAfterMs: null,
    trafficStoppedAfterMs: null,
    ejectedOrBroken: false,
    attemptsAfter: null,
    failedAttemptsAfter: null,
  };
  const deadline = o.since + o.timeoutMs;
  let lastPeer: PeerStats | undefined = o.peerBefore;
  let lastChangeAfterMs = 0;
  while (Date.now() < deadline && (times.removedAfterMs === null || times.leftRegistryAfterMs === null)) {
    const [stats, listed] = await Promise.all([
      fetchStats(o.callerUrl, 1_000, o.agent).catch(() => undefined),
      o.registry
        .list(o.service, { signal: AbortSignal.timeout(1_000) })
        .then((list) => list.some((i) => i.id === o.id))
        .catch(() => undefined),
    ]);
    const now = Date.now() - o.since;
    if (stats !== undefined) {
      const peer = stats.client.services[o.service]?.peers.find((p) => p.id === o.id);
      if (peer === undefined) {
        times.removedAfterMs ??= now;
        if (times.outOfPickerAfterMs === null) {
          times.outOfPickerAfterMs = now;
          times.outOfPickerBecause = 'removed: the registry no longer lists it';
        }
      } else {
        if (peer.requests !== lastPeer?.requests) lastChangeAfterMs = now;
        lastPeer = peer;
        if (peer.ejected || peer.breaker === 'open') times.ejectedOrBroken = true;
        if (!peer.eligible && times.outOfPickerAfterMs === null) {
          times.outOfPickerAfterMs = now;
          times.outOfPickerBecause = peerState(peer);
        }
      }
    }
    if (listed === false) times.leftRegistryAfterMs ??= now;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  times.trafficStoppedAfterMs = times.removedAfterMs !== null ? Math.min(lastChangeAfterMs, times.removedAfterMs) : null;
  if (lastPeer !== undefined) {
    times.attemptsAfter = lastPeer.requests - (o.peerBefore?.requests ?? 0);
    times.failedAttemptsAfter = lastPeer.failures - (o.peerBefore?.failures ?? 0);
  }
  return times;
}
