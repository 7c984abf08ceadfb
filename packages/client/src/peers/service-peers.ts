import type { Registry, RegistryLogger, ServiceInstance } from '@peerlb/registry';
import { eligiblePeers, type Balancer, type LoadMetric, type Outcome, type Picker, type ServerLoadBoard } from '../balancer/index.js';
import { ServiceWatch, type DiscoveryRules, type DiscoverySink, type DiscoveryStatus } from '../discovery/index.js';
import {
  OutlierDetector,
  type BreakerFactory,
  type BreakerState,
  type OutlierDetectionOptions,
  type OutlierEvent,
} from '../resilience/index.js';
import type { ClientEvents } from '../events.js';
import type { ResolvedPoolOptions, TransportFactory } from '../transport/index.js';
import type { ServiceHedging } from '../hedging/service-hedging.js';
import { Peer, type PeerBreakers } from './peer.js';
import { PickRing } from './pick-ring.js';

/** Everything a service's peer set needs from the client that owns it. */
export interface ServiceContext {
  readonly registry: Registry;
  readonly balancer: Balancer;
  readonly metric: LoadMetric;
  /** Where peers' load reports are kept; undefined with `loadReports: false`. */
  readonly loadReports: ServerLoadBoard | undefined;
  /** Undefined when breakers are disabled. */
  readonly breakers: BreakerFactory | undefined;
  /** False when outlier ejection is disabled. */
  readonly outlier: OutlierDetectionOptions | false;
  readonly panicThreshold: number;
  readonly transportFactory: TransportFactory;
  readonly poolOptions: ResolvedPoolOptions;
  /** How long a leaving peer's pool may drain before it is destroyed. */
  readonly retireGraceMs: number;
  /** Requests in flight to one peer beyond which it is not picked (Infinity: no limit). */
  readonly maxConcurrentPerPeer: number;
  readonly discovery: DiscoveryRules;
  readonly events: ClientEvents;
  readonly logger: RegistryLogger;
  /** Monotonic clock (ms), shared with load metrics, outlier detection and the rate limiter. */
  readonly clock: () => number;
}

export interface ServiceCounters {
  /** Calls made (not attempts). */
  requests: number;
  /** Calls that ended in an error (not a response). */
  failures: number;
  retries: number;
  /** Peers taken out by outlier detection. */
  ejections: number;
}

/**
 * The live state of one service inside a client: its registry watch, its peers (identity kept
 * across updates), and the picker snapshot the request path reads. Rebuilt, never mutated, when
 * membership or health changes, so a pick is a read of one field plus the picker's own work.
 */
export class ServicePeers implements DiscoverySink {
  readonly watch: ServiceWatch;
  readonly counters: ServiceCounters = { requests: 0, failures: 0, retries: 0, ejections: 0 };
  /** Hedging state (latency window, credit, counters), made on the first hedged call. */
  hedging: ServiceHedging | undefined = undefined;
  /** Where the last attempts went, for `client.explain()`. */
  readonly recentPicks = new PickRing();
  picker: Picker<Peer>;
  /** The peers the current picker was built from. */
  eligibleList: readonly Peer[] = [];
  private peers = new Map<string, Peer>();
  private list: Peer[] = [];
  private readonly detector: OutlierDetector | undefined;
  /** Shared by every peer of the service; undefined with `breaker: false`. */
  private readonly peerBreakers: PeerBreakers | undefined;
  private panic = false;
  private expired = false;
  private restoreTimer: NodeJS.Timeout | undefined;
  private avoidTimer: NodeJS.Timeout | undefined;
  private avoidTimerAt = Infinity;
  private readonly retiring = new Set<Promise<void>>();
  private closed = false;
  /** Clock reading of the rebuild in progress: one per rebuild, not one per peer. */
  private rebuildAt = 0;
  /** Peers keyed `id@address:port` because their id was repeated (see `instances`). */
  private endpointKeyed = 0;
  private readonly isHealthy = (peer: Peer): boolean =>
    peer.breaker?.state !== 'open' &&
    (this.detector === undefined || !this.detector.isEjected(peer.id)) &&
    peer.avoidUntil <= this.rebuildAt;

  constructor(
    readonly service: string,
    private readonly ctx: ServiceContext,
  ) {
    this.picker = ctx.balancer.build<Peer>([]);
    this.detector = ctx.outlier === false ? undefined : new OutlierDetector(ctx.outlier, 'outlier');
    this.peerBreakers =
      ctx.breakers === undefined
        ? undefined
        : { factory: ctx.breakers, onState: (peer, state) => this.onBreaker(peer, state) };
    this.watch = new ServiceWatch(ctx.registry, service, ctx.discovery, this, ctx.logger);
  }

  start(): void {
    this.watch.start();
  }

  /** Requests in flight to one peer beyond which it is not picked (Infinity: no limit). */
  get maxConcurrentPerPeer(): number {
    return this.ctx.maxConcurrentPerPeer;
  }

  /** The balancer and load metric this service's pickers are built with (for `explain`). */
  get balancer(): Balancer {
    return this.ctx.balancer;
  }

  get metric(): LoadMetric {
    return this.ctx.metric;
  }

  get panicThreshold(): number {
    return this.ctx.panicThreshold;
  }

  get peerList(): readonly Peer[] {
    return this.list;
  }

  get inPanic(): boolean {
    return this.panic;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get isExpired(): boolean {
    return this.expired;
  }

  isEjected(peer: Peer): boolean {
    return this.detector?.isEjected(peer.id) ?? false;
  }

  ejectedUntil(peer: Peer): number | undefined {
    return this.detector?.peerState(peer.id)?.ejectedUntil;
  }

  // --- DiscoverySink -------------------------------------------------------------------------

  /**
   * Peers are keyed by instance id; an id this update repeats (Consul ids are unique per agent
   * only) keys its later endpoints by `id@address:port`, so each endpoint is its own peer and
   * keeps its identity while listed. Two passes so a kept peer's key is never taken by a new one.
   */
  instances(instances: readonly ServiceInstance[]): void {
    if (this.closed) return;
    const next = new Map<string, Peer>();
    let unmatched: ServiceInstance[] | undefined;
    for (const instance of instances) {
      const kept = this.keptPeer(instance);
      if (kept === undefined) {
        (unmatched ??= []).push(instance);
      } else {
        kept.instance = instance;
        next.set(kept.id, kept);
      }
    }
    // Leavers go first: a replaced endpoint's id is free again for its successor (outlier state too).
    for (const [key, peer] of this.peers) if (next.get(key) !== peer) this.retire(peer);
    if (unmatched !== undefined) {
      for (const instance of unmatched) {
        const key = next.has(instance.id) ? endpointKey(instance) : instance.id;
        // The same id, address and port listed twice is one endpoint: one peer.
        if (next.has(key)) continue;
        next.set(key, this.add(instance, key));
      }
    }
    this.peers = next;
    // Sorted by id so order-sensitive pickers (round robin, hash ring) agree across clients.
    // Registries mostly answer in id order already: checking is O(n), sorting O(n log n).
    const list = [...next.values()];
    this.list = isSortedById(list) ? list : list.sort(byId);
    this.rebuild();
  }

  /** The current peer for this endpoint (met twice in one update: the same endpoint listed twice). */
  private keptPeer(instance: ServiceInstance): Peer | undefined {
    const listed = this.peers.get(instance.id);
    if (listed !== undefined && listed.sameEndpoint(instance)) return listed;
    // Endpoint keys exist only while some id repeats: no key string is built otherwise.
    if (this.endpointKeyed === 0) return undefined;
    const byEndpoint = this.peers.get(endpointKey(instance));
    return byEndpoint !== undefined && byEndpoint.sameEndpoint(instance) ? byEndpoint : undefined;
  }

  staleChanged(status: DiscoveryStatus): void {
    if (this.closed) return;
    const event = { service: this.service, stale: status.stale, expired: status.expired };
    this.ctx.events.emit('stale', status.lastError ? { ...event, error: status.lastError } : event);
    if (status.expired !== this.expired) {
      this.expired = status.expired;
      this.rebuild();
    }
  }

  // --- health feedback -----------------------------------------------------------------------

  /** Feeds one finished attempt to outlier detection. (The load tracker is completed by the caller.) */
  record(peer: Peer, outcome: Outcome, now: number): void {
    if (outcome.kind === 'failure' && outcome.reason !== 'aborted') peer.failures++;
    if (this.detector === undefined || peer.retired) return;
    const event = this.detector.record(peer.id, outcome, now);
    if (event) this.onOutlierEvents([event]);
  }

  /**
   * A peer's answer carried a load report (header value as received). A peer's first report
   * rebuilds the picker, so snapshots of peers that never report skip reports entirely.
   */
  loadReport(peer: Peer, headerValue: unknown, now: number): void {
    const board = this.ctx.loadReports;
    if (board === undefined || headerValue === undefined || peer.retired) return;
    if (board.record(peer, headerValue, now)) this.rebuild();
  }

  /** The peer's pool refused a request's arguments: give the peer a fresh pool (see `replaceAfterRefusal`). */
  refused(peer: Peer, error: unknown): void {
    peer.transportIfMade?.replaceAfterRefusal(error, this.ctx.retireGraceMs);
  }

  /** The peer answered 429/503 with Retry-After: keep it out of the picker that long. */
  avoid(peer: Peer, ms: number): void {
    if (peer.retired || ms <= 0) return;
    const until = this.ctx.clock() + ms;
    if (until <= peer.avoidUntil) return;
    const wasAvoided = peer.avoidUntil > this.ctx.clock();
    peer.avoidUntil = until;
    if (!wasAvoided) this.rebuild();
    this.armAvoidTimer(until);
  }

  // --- lifecycle -----------------------------------------------------------------------------

  /** Stops the watch and retires every peer; resolves once their pools are closed. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.watch.close();
      if (this.restoreTimer) clearTimeout(this.restoreTimer);
      if (this.avoidTimer) clearTimeout(this.avoidTimer);
      for (const peer of this.peers.values()) this.retire(peer, false);
      this.peers.clear();
      this.list = [];
      this.eligibleList = [];
      this.picker = this.ctx.balancer.build<Peer>([]);
    }
    await Promise.all([...this.retiring]);
  }

  private add(instance: ServiceInstance, key: string): Peer {
    const ctx = this.ctx;
    const peer = new Peer(instance, ctx.metric.create(), this.peerBreakers, ctx.transportFactory, ctx.poolOptions, key);
    if (key !== instance.id) {
      this.endpointKeyed++;
      // Once per endpoint that joins under a repeated id, not once per update listing it.
      ctx.logger.warn(`registry lists instance id "${instance.id}" more than once for "${this.service}": this endpoint is peer "${key}"`, {
        service: this.service,
        id: instance.id,
        peer: key,
      });
    }
    this.detector?.add(peer.id);
    if (ctx.events.has('peer:added')) ctx.events.emit('peer:added', { service: this.service, peer: peer.info });
    return peer;
  }

  private retire(peer: Peer, announce = true): void {
    if (peer.retired) return;
    peer.retired = true;
    if (peer.id !== peer.instance.id) this.endpointKeyed--;
    peer.breaker?.shutdown();
    // Its slot in the metric's shared table goes to the next peer; late completions still land.
    peer.tracker.release?.();
    this.detector?.remove(peer.id);
    // A peer never called has nothing to close: no promise to track (10,000 of them in a big update).
    const transport = peer.transportIfMade;
    if (transport !== undefined && !transport.idle) {
      const retiring = transport.retire(this.ctx.retireGraceMs);
      this.retiring.add(retiring);
      void retiring.then(() => this.retiring.delete(retiring));
    } else {
      transport?.retire(this.ctx.retireGraceMs);
    }
    if (announce && this.ctx.events.has('peer:removed')) {
      this.ctx.events.emit('peer:removed', { service: this.service, peer: peer.info });
    }
  }

  private onBreaker(peer: Peer, state: BreakerState): void {
    if (peer.retired || this.closed) return;
    this.ctx.events.emit('breaker', { service: this.service, peer: peer.info, state });
    this.rebuild();
  }

  private onOutlierEvents(events: readonly OutlierEvent[]): void {
    for (const event of events) {
      const peer = this.peers.get(event.peerId);
      if (!peer) continue;
      if (event.type === 'ejected') {
        this.counters.ejections++;
        this.ctx.events.emit('peer:ejected', { service: this.service, peer: peer.info, durationMs: event.ejectionMs });
      } else {
        this.ctx.events.emit('peer:restored', { service: this.service, peer: peer.info });
      }
    }
    this.rebuild();
    this.armRestoreTimer();
  }

  private armRestoreTimer(): void {
    if (this.restoreTimer) clearTimeout(this.restoreTimer);
    this.restoreTimer = undefined;
    const at = this.detector?.nextRestoreAt();
    if (at === undefined || this.closed) return;
    // One timer for the whole service, aimed at the earliest return.
    this.restoreTimer = setTimeout(() => {
      this.restoreTimer = undefined;
      const events = this.detector!.restoreDue(this.ctx.clock());
      if (events.length > 0) this.onOutlierEvents(events);
      else this.armRestoreTimer();
    }, Math.max(0, at - this.ctx.clock()) + 1);
    this.restoreTimer.unref();
  }

  private armAvoidTimer(until: number): void {
    if (this.closed || (this.avoidTimer && this.avoidTimerAt <= until)) return;
    if (this.avoidTimer) clearTimeout(this.avoidTimer);
    this.avoidTimerAt = until;
    this.avoidTimer = setTimeout(() => {
      this.avoidTimer = undefined;
      this.avoidTimerAt = Infinity;
      this.rebuild();
      const now = this.ctx.clock();
      let next = Infinity;
      for (const peer of this.list) if (peer.avoidUntil > now && peer.avoidUntil < next) next = peer.avoidUntil;
      if (next !== Infinity) this.armAvoidTimer(next);
    }, Math.max(0, until - this.ctx.clock()) + 1);
    this.avoidTimer.unref();
  }

  private rebuild(): void {
    if (this.closed) return;
    if (this.expired) {
      this.eligibleList = [];
      this.picker = this.ctx.balancer.build<Peer>([]);
      return;
    }
    this.rebuildAt = this.ctx.clock();
    const eligible = eligiblePeers(this.list, this.isHealthy, this.ctx.panicThreshold);
    this.eligibleList = eligible.peers;
    this.picker = this.ctx.balancer.build(eligible.peers);
    if (eligible.panic !== this.panic) {
      this.panic = eligible.panic;
      this.ctx.events.emit('panic', {
        service: this.service,
        active: eligible.panic,
        healthy: eligible.healthy,
        total: eligible.total,
      });
    }
  }
}

const byId = (a: Peer, b: Peer): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function isSortedById(peers: readonly Peer[]): boolean {
  for (let i = 1; i < peers.length; i++) if (peers[i - 1]!.id > peers[i]!.id) return false;
  return true;
}

/** `id@address:port` (`[address]` for IPv6): the peer key of an instance whose id is repeated. */
function endpointKey(instance: ServiceInstance): string {
  const host = instance.address.includes(':') ? `[${instance.address}]` : instance.address;
  return `${instance.id}@${host}:${instance.port}`;
}
