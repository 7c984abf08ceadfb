import { NO_HEDGES, type HedgeStats } from './hedging/service-hedging.js';
import type { PeerLoadReport } from './balancer/index.js';
import type { BreakerState } from './resilience/index.js';
import { exclusionsOf, type ExclusionReason } from './peers/exclusions.js';
import type { ServicePeers } from './peers/service-peers.js';

export interface PeerStats {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** Requests in flight now (until their response body ends). */
  readonly inFlight: number;
  /** The load metric's current value (lower is better; comparable within one metric). */
  readonly load: number;
  /** `disabled` when the client runs without breakers. */
  readonly breaker: BreakerState | 'shutdown' | 'disabled';
  readonly ejected: boolean;
  /** Time left in the ejection, when ejected. */
  readonly ejectedForMs: number | undefined;
  /** Time left in a Retry-After the peer asked for, if any. */
  readonly avoidedForMs: number | undefined;
  /** Whether the peer is in the current picker. */
  readonly eligible: boolean;
  /** Why it is not picked now (empty: it can be); the names `explain()` and the metrics use. */
  readonly excluded: readonly ExclusionReason[];
  /** Attempts sent to it, and those that failed (error, 5xx, 429). */
  readonly requests: number;
  readonly failures: number;
  /** Whether its connection pool has been created (it is created on first use). */
  readonly poolOpen: boolean;
  /** The last load report the peer sent (`endpoint-load-metrics`), if any, with its age. */
  readonly loadReport?: PeerLoadReport | undefined;
}

export interface ServiceStats {
  readonly service: string;
  /** The registry has answered at least once. */
  readonly discovered: boolean;
  /** The registry is failing; the last good list is being served. */
  readonly stale: boolean;
  /** Stale for longer than `maxStalenessMs`: no peer is served. */
  readonly expired: boolean;
  /** Epoch ms of the first registry error of the current outage. */
  readonly staleSince: number | undefined;
  readonly lastError: string | undefined;
  /** Epoch ms of the last good registry answer. */
  readonly updatedAt: number | undefined;
  /** An empty registry answer is being held back for the grace period. */
  readonly emptyPending: boolean;
  /** Too few healthy peers: every peer is in the picker. */
  readonly panic: boolean;
  /** Peers in the current picker. */
  readonly eligiblePeers: number;
  readonly requests: number;
  readonly failures: number;
  readonly retries: number;
  /** Hedged requests: hedges sent, hedges that answered first, attempts aborted for another's answer. */
  readonly hedges: HedgeStats;
  /** Peers taken out by outlier detection, and registry errors, since the service was first called. */
  readonly ejections: number;
  readonly registryErrors: number;
  readonly peers: readonly PeerStats[];
}

export interface ClientStats {
  readonly closed: boolean;
  readonly services: Readonly<Record<string, ServiceStats>>;
}

export function serviceStats(svc: ServicePeers, now: number): ServiceStats {
  const status = svc.watch.status();
  const eligible = eligibleIds(svc);
  return {
    service: svc.service,
    discovered: status.seen,
    stale: status.stale,
    expired: status.expired,
    staleSince: status.staleSince,
    lastError: status.lastError?.message,
    updatedAt: status.updatedAt,
    emptyPending: status.emptyPending,
    panic: svc.inPanic,
    eligiblePeers: svc.picker.size,
    requests: svc.counters.requests,
    failures: svc.counters.failures,
    retries: svc.counters.retries,
    hedges: svc.hedging?.stats() ?? NO_HEDGES,
    ejections: svc.counters.ejections,
    registryErrors: svc.watch.errorCount,
    peers: svc.peerList.map((peer) => {
      const until = svc.ejectedUntil(peer);
      return {
        id: peer.id,
        address: peer.instance.address,
        port: peer.instance.port,
        inFlight: peer.tracker.inFlight,
        load: peer.tracker.load(now),
        breaker: peer.breakerState,
        ejected: svc.isEjected(peer),
        ejectedForMs: until === undefined ? undefined : Math.max(0, until - now),
        avoidedForMs: peer.avoidUntil > now ? peer.avoidUntil - now : undefined,
        eligible: eligible.has(peer.id),
        excluded: exclusionsOf(svc, peer, now),
        requests: peer.requests,
        failures: peer.failures,
        poolOpen: peer.transportIfMade !== undefined && peer.transportIfMade.created && !peer.transportIfMade.retired,
        loadReport: peer.serverLoad?.snapshot(now),
      };
    }),
  };
}

function eligibleIds(svc: ServicePeers): Set<string> {
  return new Set(svc.eligibleList.map((peer) => peer.id));
}
