import { schemeOf, type ServiceInstance } from '@peerlb/registry';
import type { LoadTracker, PeerServerLoad, PickablePeer } from '../balancer/index.js';
import type { BreakerFactory, BreakerState, PeerBreaker } from '../resilience/index.js';
import type { PeerInfo } from '../errors.js';
import { PeerTransport, type ResolvedPoolOptions, type TransportFactory } from '../transport/index.js';

/** How a service's peers get their breakers: one factory, one state listener for them all. */
export interface PeerBreakers {
  readonly factory: BreakerFactory;
  readonly onState: (peer: Peer, state: BreakerState) => void;
}

/**
 * One instance of a service, kept across registry updates for as long as its id is listed (and
 * its address and port do not change): its load history, breaker and pool survive updates.
 * `id` is the instance's id, or `id@address:port` when one update lists that id more than once.
 */
export class Peer implements PickablePeer {
  readonly id: string;
  readonly service: string;
  /** Latest registry data (tags and meta may change in place). */
  instance: ServiceInstance;
  readonly tracker: LoadTracker;
  #info: PeerInfo | undefined;
  #transport: PeerTransport | undefined;
  readonly #transportFactory: TransportFactory;
  readonly #poolOptions: ResolvedPoolOptions;
  #breaker: PeerBreaker | undefined;
  readonly #breakers: PeerBreakers | undefined;
  /** Until when (clock ms) the peer asked, with Retry-After, not to be sent more requests. */
  avoidUntil = 0;
  /** Attempts sent to this peer, and those that failed (error, 5xx or 429). */
  requests = 0;
  failures = 0;
  retired = false;
  /** The load the peer reports on its answers; made on its first report. */
  serverLoad: PeerServerLoad | undefined;

  constructor(
    instance: ServiceInstance,
    tracker: LoadTracker,
    breakers: PeerBreakers | undefined,
    factory: TransportFactory,
    poolOptions: ResolvedPoolOptions,
    id: string = instance.id,
  ) {
    this.id = id;
    this.service = instance.service;
    this.instance = instance;
    this.tracker = tracker;
    this.#breakers = breakers;
    this.#transportFactory = factory;
    this.#poolOptions = poolOptions;
  }

  // info, transport and breaker are made on first use: a service of 10,000 instances mostly
  // holds peers that are never called, and a large update makes or retires thousands at once.

  /** The public face of the peer, built once: responses, errors and events share it. */
  get info(): PeerInfo {
    const instance = this.instance;
    return (this.#info ??= Object.freeze({ id: this.id, address: instance.address, port: instance.port }));
  }

  /** The peer's connection pool holder; a peer that has left gets one that refuses every call. */
  get transport(): PeerTransport {
    if (this.#transport === undefined) {
      this.#transport = new PeerTransport(this.instance, this.#transportFactory, this.#poolOptions);
      if (this.retired) void this.#transport.retire(0);
    }
    return this.#transport;
  }

  /** The transport if it was ever made (retiring a peer never called has nothing to close). */
  get transportIfMade(): PeerTransport | undefined {
    return this.#transport;
  }

  /**
   * The peer's breaker if it has had a call. Health checks and picks read this: a peer never
   * called has no failures, so it counts as closed.
   */
  get breaker(): PeerBreaker | undefined {
    return this.#breaker;
  }

  /** For stats: 'disabled' with `breaker: false`; a peer never called is 'closed'. */
  get breakerState(): BreakerState | 'shutdown' | 'disabled' {
    if (this.#breakers === undefined) return 'disabled';
    return this.#breaker?.state ?? (this.retired ? 'shutdown' : 'closed');
  }

  /**
   * The breaker for a call, made on the peer's first call like its pool: a client watching
   * 10,000 instances and calling a few pays for a few. Undefined with `breaker: false`, and once
   * the peer has left or the client closes (its transport refuses the call then anyway).
   */
  breakerForCall(): PeerBreaker | undefined {
    if (this.#breaker !== undefined || this.#breakers === undefined || this.retired) return this.#breaker;
    const { factory, onState } = this.#breakers;
    if (factory.closed) return undefined;
    const breaker = factory.create(this.id);
    breaker.onStateChange((state) => onState(this, state));
    this.#breaker = breaker;
    return breaker;
  }

  /** Same id but another address, port or scheme is another endpoint: it gets a fresh Peer. */
  sameEndpoint(instance: ServiceInstance): boolean {
    return (
      instance.address === this.instance.address &&
      instance.port === this.instance.port &&
      schemeOf(instance) === schemeOf(this.instance)
    );
  }
}
