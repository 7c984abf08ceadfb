import { booleanOption, durationOption, numberOption, optionsObject } from '@peerlb/registry';
import type { Outcome } from '../balancer/types.js';

export interface OutlierDetectionOptions {
  /** Consecutive failures that eject a peer. Default 5. */
  consecutiveFailures?: number;
  /** First ejection time; the n-th ejection lasts n × this (capped). Default 30 000 ms. */
  baseEjectionMs?: number;
  /** Cap on one ejection. Default 300 000 ms (at least `baseEjectionMs`). */
  maxEjectionMs?: number;
  /** At most this percentage of the known peers are ejected at once. Default 50. */
  maxEjectionPercent?: number;
  /**
   * Allow one ejection even when the percentage rounds down to none (Envoy's behaviour). Default
   * false: with the default 50 % it only matters for a single peer, and ejecting the only peer
   * buys nothing (panic mode would put it straight back).
   */
  ejectAtLeastOne?: boolean;
}

export type OutlierEvent =
  | {
      readonly type: 'ejected';
      readonly peerId: string;
      readonly at: number;
      /** When the peer is due back. */
      readonly until: number;
      readonly ejectionMs: number;
      /** The ejection multiplier used: 1 for a first (or long forgotten) ejection. */
      readonly times: number;
    }
  | { readonly type: 'restored'; readonly peerId: string; readonly at: number };

export interface OutlierPeerState {
  readonly consecutiveFailures: number;
  readonly ejected: boolean;
  /** When an ejected peer is due back; undefined when not ejected. */
  readonly ejectedUntil: number | undefined;
  readonly times: number;
}

interface PeerRecord {
  failures: number;
  ejected: boolean;
  until: number;
  times: number;
  /** When it last came back, for forgetting old ejections. -Infinity: never ejected. */
  restoredAt: number;
}

const NO_EVENTS: readonly OutlierEvent[] = Object.freeze([]);

/** A known peer that has not failed yet shares this record; it gets its own at its first failure. */
const UNTOUCHED: Readonly<PeerRecord> = Object.freeze({
  failures: 0,
  ejected: false,
  until: 0,
  times: 0,
  restoredAt: -Infinity,
});

/**
 * Consecutive-failure outlier ejection (Envoy's `consecutive_5xx`, grpc-js's outlier detection),
 * pure: no timers, the caller passes `now`. The owner calls `record` on each completion,
 * `restoreDue(now)` when `nextRestoreAt()` comes (one timer for all peers), and publishes the
 * events it gets back.
 *
 * - Failures that count: connect, reset, timeout, and status (5xx). A 429 is the peer protecting
 *   itself as designed, and `aborted` is our own deadline: both leave the counter alone.
 * - A success resets the counter. Completions while ejected change nothing (in panic mode an
 *   ejected peer still gets traffic; it must not be re-ejected or released early by it).
 * - Ejection time grows with the multiplier: base × times, capped at `maxEjectionMs`. The
 *   multiplier drops by one per `baseEjectionMs` spent back in service since the last restore, so an
 *   old, isolated ejection is forgotten.
 * - Cap: a peer that reaches the threshold while `maxEjectionPercent` of the peers are already
 *   out stays in, keeps its counter, and is ejected on its next failure if room was made.
 * - Peers are known through `add`/`remove`; completions for unknown peers (a late completion
 *   after removal) are ignored so they cannot skew the percentage.
 */
export class OutlierDetector {
  readonly #consecutiveFailures: number;
  readonly #baseEjectionMs: number;
  readonly #maxEjectionMs: number;
  readonly #maxEjectionPercent: number;
  readonly #ejectAtLeastOne: boolean;
  readonly #peers = new Map<string, PeerRecord | Readonly<PeerRecord>>();
  readonly #ejected = new Set<string>();

  constructor(options?: OutlierDetectionOptions, field = 'outlierDetection') {
    const o = optionsObject(field, options);
    this.#consecutiveFailures = numberOption(`${field}.consecutiveFailures`, o.consecutiveFailures, 5, {
      min: 1,
      integer: true,
    });
    this.#baseEjectionMs = durationOption(`${field}.baseEjectionMs`, o.baseEjectionMs, 30_000);
    this.#maxEjectionMs = durationOption(
      `${field}.maxEjectionMs`,
      o.maxEjectionMs,
      Math.max(300_000, this.#baseEjectionMs),
      { min: this.#baseEjectionMs },
    );
    this.#maxEjectionPercent = numberOption(`${field}.maxEjectionPercent`, o.maxEjectionPercent, 50, {
      min: 0,
      max: 100,
    });
    this.#ejectAtLeastOne = booleanOption(`${field}.ejectAtLeastOne`, o.ejectAtLeastOne, false);
  }

  /** Starts tracking a peer (no-op if known). */
  add(peerId: string): void {
    if (!this.#peers.has(peerId)) this.#peers.set(peerId, UNTOUCHED);
  }

  /** Forgets a peer that left; no event (it is gone, not restored). */
  remove(peerId: string): void {
    this.#peers.delete(peerId);
    this.#ejected.delete(peerId);
  }

  /** Feeds one completion. Returns the ejection it caused, if any. */
  record(peerId: string, outcome: Outcome, now: number): OutlierEvent | undefined {
    const known = this.#peers.get(peerId);
    if (known === undefined || known.ejected) return undefined;
    if (outcome.kind === 'success') {
      if (known !== UNTOUCHED) (known as PeerRecord).failures = 0;
      return undefined;
    }
    if (outcome.reason === 'aborted' || outcome.statusCode === 429) return undefined;
    const peer = known === UNTOUCHED ? this.#own(peerId) : (known as PeerRecord);
    peer.failures++;
    if (peer.failures < this.#consecutiveFailures || this.#ejected.size >= this.maxEjected) return undefined;
    const healthyIntervals = Math.floor((now - peer.restoredAt) / this.#baseEjectionMs);
    const times = Math.max(0, peer.times - Math.max(0, healthyIntervals)) + 1;
    const ejectionMs = Math.min(this.#maxEjectionMs, this.#baseEjectionMs * times);
    peer.failures = 0;
    peer.ejected = true;
    peer.times = times;
    peer.until = now + ejectionMs;
    this.#ejected.add(peerId);
    return { type: 'ejected', peerId, at: now, until: peer.until, ejectionMs, times };
  }

  #own(peerId: string): PeerRecord {
    const record: PeerRecord = { ...UNTOUCHED };
    this.#peers.set(peerId, record);
    return record;
  }

  /** Brings back every ejected peer whose time is up, and says which. */
  restoreDue(now: number): readonly OutlierEvent[] {
    let events: OutlierEvent[] | undefined;
    for (const peerId of this.#ejected) {
      const peer = this.#peers.get(peerId) as PeerRecord;
      if (peer.until > now) continue;
      peer.ejected = false;
      peer.failures = 0;
      peer.restoredAt = now;
      this.#ejected.delete(peerId);
      (events ??= []).push({ type: 'restored', peerId, at: now });
    }
    return events ?? NO_EVENTS;
  }

  /** The earliest time an ejected peer is due back (schedule `restoreDue` then), or undefined. */
  nextRestoreAt(): number | undefined {
    let next: number | undefined;
    for (const peerId of this.#ejected) {
      const until = this.#peers.get(peerId)!.until;
      if (next === undefined || until < next) next = until;
    }
    return next;
  }

  isEjected(peerId: string): boolean {
    return this.#ejected.has(peerId);
  }

  /** How many peers may be ejected at once with the peers known now. */
  get maxEjected(): number {
    const byPercent = Math.floor((this.#peers.size * this.#maxEjectionPercent) / 100 + 1e-9);
    return this.#ejectAtLeastOne && this.#peers.size > 0 ? Math.max(1, byPercent) : byPercent;
  }

  get ejectedCount(): number {
    return this.#ejected.size;
  }

  get size(): number {
    return this.#peers.size;
  }

  peerState(peerId: string): OutlierPeerState | undefined {
    const peer = this.#peers.get(peerId);
    if (peer === undefined) return undefined;
    return {
      consecutiveFailures: peer.failures,
      ejected: peer.ejected,
      ejectedUntil: peer.ejected ? peer.until : undefined,
      times: peer.times,
    };
  }
}
