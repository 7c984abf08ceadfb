import { schemeOf, type ServiceInstance } from '@peerlb/registry';
import type { LoadTracker, PickablePeer } from '../balancer/index.js';
import type { PeerBreaker } from '../resilience/index.js';
import type { PeerInfo } from '../errors.js';
import { PeerTransport, type ResolvedPoolOptions, type TransportFactory } from '../transport/index.js';

/**
 * One instance of a service, kept across registry updates for as long as its id is listed (and
 * its address and port do not change): its load history, breaker and pool survive updates.
 */
export class Peer implements PickablePeer {
  readonly id: string;
  readonly service: string;
  /** Latest registry data (tags and meta may change in place). */
  instance: ServiceInstance;
  /** The public face of the peer, built once: responses, errors and events share it. */
  readonly info: PeerInfo;
  readonly tracker: LoadTracker;
  readonly breaker: PeerBreaker | undefined;
  readonly transport: PeerTransport;
  /** Until when (clock ms) the peer asked, with Retry-After, not to be sent more requests. */
  avoidUntil = 0;
  /** Attempts sent to this peer, and those that failed (error, 5xx or 429). */
  requests = 0;
  failures = 0;
  retired = false;

  constructor(
    instance: ServiceInstance,
    tracker: LoadTracker,
    breaker: PeerBreaker | undefined,
    factory: TransportFactory,
    poolOptions: ResolvedPoolOptions,
  ) {
    this.id = instance.id;
    this.service = instance.service;
    this.instance = instance;
    this.info = Object.freeze({ id: instance.id, address: instance.address, port: instance.port });
    this.tracker = tracker;
    this.breaker = breaker;
    this.transport = new PeerTransport(instance, factory, poolOptions);
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
