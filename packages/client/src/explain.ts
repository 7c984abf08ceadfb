import { InvalidOptionsError } from '@peerlb/registry';
import type { PickablePeer } from './balancer/index.js';
import { exclusionsOf, type ExclusionReason } from './peers/exclusions.js';
import type { Peer } from './peers/peer.js';
import type { ServicePeers } from './peers/service-peers.js';

export interface ExplainOptions {
  /** Dry-run picks made to estimate where traffic goes now (default 1000, 0..100 000). */
  samples?: number;
  /** Affinity key for `consistentHash()` (as `request({ key })`). */
  key?: string;
}

/** One peer as the balancer sees it now. */
export interface PeerExplanation {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  /** In the current picker snapshot (excluded peers are, too, in panic mode). */
  readonly inPicker: boolean;
  /** Why it is not picked now; empty when it can be. Same names as `stats()` and the metrics. */
  readonly excluded: readonly ExclusionReason[];
  /**
   * The cost the balancer compares (lower wins): for P2C the load metric's value (e.g. peak-EWMA
   * latency x (in flight + 1)) times the peer's server-load factor; the metric's value for
   * balancers that compare nothing.
   */
  readonly load: number;
  /** The load metric's value alone, this client's own view (before the server-load factor). */
  readonly trackerLoad: number;
  /** Smoothed utilization (0..1) from the peer's load reports; undefined without a live report. */
  readonly serverUtilization: number | undefined;
  /** Peak-EWMA latency estimate (ms) before the in-flight factor; undefined for other metrics. */
  readonly latencyMs: number | undefined;
  readonly inFlight: number;
  readonly breaker: string;
  readonly ejectedForMs: number | undefined;
  readonly retryAfterMs: number | undefined;
  /** Attempts sent to it and those that failed, since it appeared. */
  readonly requests: number;
  readonly failures: number;
  /** Share of the dry-run picks it won (0..1). */
  readonly share: number;
}

/** One candidate a dry-run pick compared. */
export interface ComparedCandidate {
  readonly id: string;
  /** The cost the balancer compared (as `PeerExplanation.load`). */
  readonly load: number;
}

export interface Explanation {
  readonly service: string;
  readonly balancer: string;
  readonly metric: string;
  /** The registry has answered; `stale`: it is failing and the last list is served; `expired`: not even that. */
  readonly discovered: boolean;
  readonly stale: boolean;
  readonly expired: boolean;
  /** Peers not excluded by breaker, ejection or Retry-After, out of all known. */
  readonly healthy: number;
  readonly total: number;
  readonly panicThreshold: number;
  /** Fewer than `panicThreshold` of the peers are healthy: every peer is back in the picker. */
  readonly panic: boolean;
  readonly peers: readonly PeerExplanation[];
  /** One dry-run pick on the live state: the candidates compared, with their loads, and the winner. */
  readonly pick: {
    readonly chosen: string | undefined;
    readonly compared: readonly ComparedCandidate[];
    /** Why nothing could be picked, when `chosen` is undefined. */
    readonly unavailable: 'no-peers' | 'all-excluded' | undefined;
  };
  /** Dry-run picks made for the shares. */
  readonly samples: number;
  /** Where the last attempts of real calls went (at most 32), newest first; `attempt` 2+ is a retry. */
  readonly recentPicks: readonly { readonly peer: string; readonly attempt: number; readonly agoMs: number }[];
}

const HEALTH_REASONS: ReadonlySet<ExclusionReason> = new Set(['breaker_open', 'ejected', 'retry_after']);

/**
 * Answers "why this peer?" without touching the request path: every peer with its load and
 * exclusions, then picks made on a fresh picker snapshot of the same eligible peers (so no live
 * cursor or state moves), peers at `maxConcurrentPerPeer` skipped as a call would.
 */
export function explainService(svc: ServicePeers, now: number, random: () => number, options: ExplainOptions = {}): Explanation {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
  const samples = options.samples ?? 1000;
  if (!Number.isInteger(samples) || samples < 0 || samples > 100_000) {
    throw new InvalidOptionsError('samples', 'must be an integer in 0..100000');
  }
  if (options.key !== undefined && typeof options.key !== 'string') throw new InvalidOptionsError('key', 'must be a string');

  const status = svc.watch.status();
  const balancer = svc.balancer;
  const costOf = (peer: PickablePeer): number => (balancer.cost === undefined ? peer.tracker.load(now) : balancer.cost(peer, now));
  const eligible = new Set(svc.eligibleList);
  const excluded = new Map<Peer, ExclusionReason[]>();
  let healthy = 0;
  for (const peer of svc.peerList) {
    const reasons = exclusionsOf(svc, peer, now);
    excluded.set(peer, reasons);
    if (!reasons.some((r) => HEALTH_REASONS.has(r))) healthy++;
  }

  const picker = svc.balancer.build<Peer>(svc.eligibleList);
  const pickOnce = (compared?: PickablePeer[]): Peer | 'no-peers' | 'all-excluded' => {
    let exclude: Set<string> | undefined;
    for (let i = 0; i <= picker.size; i++) {
      const result = picker.pick({ random, now, exclude, key: options.key, compared });
      if (result.kind !== 'peer') return result.reason;
      // As a call's pick does: a breaker refusing now (also in panic mode) or a full peer is skipped.
      const reasons = excluded.get(result.peer) ?? [];
      if (!reasons.includes('max_concurrency') && !reasons.includes('breaker_open')) return result.peer;
      (exclude ??= new Set()).add(result.peer.id);
    }
    return 'all-excluded';
  };

  const compared: PickablePeer[] = [];
  const first = pickOnce(compared);
  const chosen = typeof first === 'string' ? undefined : first;
  // Pickers that compare nothing (round robin, random, hash) are explained by their choice alone.
  if (chosen !== undefined && !compared.includes(chosen)) compared.push(chosen);
  const wins = new Map<Peer, number>();
  for (let i = 0; i < samples; i++) {
    const peer = pickOnce();
    if (typeof peer !== 'string') wins.set(peer, (wins.get(peer) ?? 0) + 1);
  }

  return {
    service: svc.service,
    balancer: svc.balancer.name,
    metric: svc.metric.name,
    discovered: status.seen,
    stale: status.stale,
    expired: status.expired,
    healthy,
    total: svc.peerList.length,
    panicThreshold: svc.panicThreshold,
    panic: svc.inPanic,
    peers: svc.peerList.map((peer) => {
      const until = svc.ejectedUntil(peer);
      const tracker = peer.tracker as typeof peer.tracker & { estimateMs?: (now: number) => number };
      return {
        id: peer.id,
        address: peer.instance.address,
        port: peer.instance.port,
        inPicker: eligible.has(peer),
        excluded: excluded.get(peer) ?? [],
        load: costOf(peer),
        trackerLoad: tracker.load(now),
        serverUtilization: serverUtilization(peer, now),
        latencyMs: typeof tracker.estimateMs === 'function' ? tracker.estimateMs(now) : undefined,
        inFlight: tracker.inFlight,
        breaker: peer.breakerState,
        ejectedForMs: until === undefined ? undefined : Math.max(0, until - now),
        retryAfterMs: peer.avoidUntil > now ? peer.avoidUntil - now : undefined,
        requests: peer.requests,
        failures: peer.failures,
        share: samples === 0 ? 0 : (wins.get(peer) ?? 0) / samples,
      };
    }),
    pick: {
      chosen: chosen?.id,
      compared: compared.map((p) => ({ id: p.id, load: costOf(p) })),
      unavailable: typeof first === 'string' ? first : undefined,
    },
    samples,
    recentPicks: svc.recentPicks.list(now),
  };
}

function serverUtilization(peer: Peer, now: number): number | undefined {
  const report = peer.serverLoad?.last === undefined ? undefined : peer.serverLoad.snapshot(now);
  return report === undefined || report.expired ? undefined : report.smoothedUtilization;
}
