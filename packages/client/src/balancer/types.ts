import type { ServiceInstance } from '@peerlb/registry';
import type { PeerServerLoad } from './server-load.js';

/** How one request to a peer ended, as far as load and health tracking care. */
export type Outcome =
  | { readonly kind: 'success'; readonly latencyMs: number }
  | {
      readonly kind: 'failure';
      readonly latencyMs: number;
      /** connect: no byte was sent; reset/timeout: may have reached the peer; status: an HTTP 5xx or 429. */
      readonly reason: 'connect' | 'reset' | 'timeout' | 'status' | 'aborted';
      readonly statusCode?: number;
    };

/** Per-peer load estimate. `start` marks a request in flight and returns its completion callback. */
export interface LoadTracker {
  /** Current load estimate; lower is better. Comparable across trackers of one metric only. */
  load(now: number): number;
  start(now: number): (outcome: Outcome, now: number) => void;
  /** Requests in flight now. */
  readonly inFlight: number;
  /**
   * Optional: called once when the peer leaves. The tracker must keep answering afterwards
   * (requests still in flight complete on it); it may give shared resources back.
   */
  release?(): void;
}

/** Reads loads by index in a picker snapshot: lower is better. Called on every pick: no allocation. */
export type LoadReader = (index: number, now: number) => number;

export interface LoadMetric {
  readonly name: string;
  create(): LoadTracker;
  /**
   * Optional fast path for pickers that compare loads (P2C). Called once per picker snapshot with
   * its peers; returns a reader of their loads by index that must give what each peer's
   * `tracker.load(now)` gives, only cheaper (e.g. from a table the metric keeps), or undefined
   * when it cannot serve these peers (a tracker it did not make). Pickers then read trackers.
   */
  loadsOf?(peers: readonly PickablePeer[]): LoadReader | undefined;
}

/** What a picker sees of a peer. The client's Peer object satisfies it. */
export interface PickablePeer {
  readonly id: string;
  readonly instance: ServiceInstance;
  readonly tracker: LoadTracker;
  /** The load this peer reports on its answers (`endpoint-load-metrics`), once it has sent one. */
  readonly serverLoad?: PeerServerLoad | undefined;
}

export interface PickContext {
  /** Uniform in [0, 1). Injected so picking is a pure, reproducible function of snapshot + randomness. */
  readonly random: () => number;
  /** Current time (ms), for load metrics that decay. */
  readonly now: number;
  /** Peers not to pick (already tried by this request). */
  readonly exclude?: ReadonlySet<string>;
  /** Affinity key for consistent hashing (ignored by other pickers). */
  readonly key?: string;
  /**
   * Set by `client.explain()` only: a picker that compares candidates (P2C) pushes the ones it
   * compared here, so the explanation shows them with their loads. Pickers may ignore it.
   */
  readonly compared?: PickablePeer[];
}

export type PickResult<P extends PickablePeer> =
  | { readonly kind: 'peer'; readonly peer: P }
  | { readonly kind: 'unavailable'; readonly reason: 'no-peers' | 'all-excluded' };

/** An immutable snapshot of the peers eligible right now. Rebuilt when membership or health changes. */
export interface Picker<P extends PickablePeer> {
  readonly size: number;
  pick(ctx: PickContext): PickResult<P>;
}

/** A balancing policy as a value: builds picker snapshots. */
export interface Balancer {
  readonly name: string;
  /**
   * The load metric this policy wants peers tracked with (the client creates one tracker per
   * peer from it). Optional so hand-written balancers need not care; the client then uses
   * `peakEwma()`. Every built-in balancer sets it.
   */
  readonly metric?: LoadMetric;
  build<P extends PickablePeer>(peers: readonly P[]): Picker<P>;
  /**
   * The cost this policy compares for one peer now (lower wins), as its pickers read it: for
   * `client.explain()`, never the request path. Absent for policies that compare nothing.
   */
  cost?(peer: PickablePeer, now: number): number;
}
