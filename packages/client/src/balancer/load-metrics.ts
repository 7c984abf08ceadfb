import { InvalidOptionsError, numberOption, optionsObject } from '@peerlb/registry';
import {
  DetachedEwma,
  ESTIMATE,
  EwmaTable,
  IN_FLIGHT,
  PENALISED,
  STAMP,
  type EwmaState,
  type EwmaTraffic,
  type PeakEwmaConfig,
} from './ewma-table.js';
import type { LoadMetric, LoadReader, LoadTracker, Outcome, PickablePeer } from './types.js';

/**
 * Trackers hand out ONE completion callback per tracker, bound once, instead of a closure per
 * request: the outcome already carries the latency, so the callback needs no per-request state
 * and starting a request allocates nothing. The price: call it exactly once per `start`
 * (a second call would count a phantom completion; `inFlight` never goes below zero).
 */
type Complete = (outcome: Outcome, now: number) => void;

/** Load = requests in flight. Cheapest metric; what `leastRequests()`/`roundRobin()`/`random()` use. */
export function leastRequestsLoad(): LoadMetric {
  return { name: 'least-requests', create: () => new InFlightTracker() };
}

export class InFlightTracker implements LoadTracker {
  #inFlight = 0;
  // Made on the first start(): most peers of a large service are never called.
  #complete: Complete | undefined;

  get inFlight(): number {
    return this.#inFlight;
  }

  load(_now?: number): number {
    return this.#inFlight;
  }

  start(_now?: number): Complete {
    this.#inFlight++;
    return (this.#complete ??= () => {
      if (this.#inFlight > 0) this.#inFlight--;
    });
  }
}

export interface PeakEwmaOptions {
  /** Time constant of the moving average and of the idle decay, in ms. Default 10 000. */
  decayMs?: number;
  /**
   * Latency assumed for a peer with no sample yet. A number, or a function read until the first
   * sample. Default: the running mean of successful latencies seen by all trackers of this
   * metric (100 ms before any), so a new peer competes as an average one: not starved by a
   * pessimistic guess, not swamped by an optimistic one (its in-flight count still raises its cost).
   */
  priorMs?: number | (() => number);
  /** Least latency recorded for a failure (connect refused, reset, timeout, 5xx, 429). Default 1000. */
  penaltyMs?: number;
  /** A failure also records at least this multiple of the current estimate. Default 2. */
  penaltyFactor?: number;
  /** Cap on the penalty (an observed latency above it is still recorded as is). Default 30 000. */
  maxPenaltyMs?: number;
  /**
   * A new peer's first successful samples that are averaged (each capped at penaltyFactor × the
   * prior) before peak sensitivity applies. Default 3; 0 turns warm-up off.
   */
  warmupSamples?: number;
  /**
   * Equal shares: an estimate above the typical latency (the prior) is pulled back towards it
   * once it is stale, with a time constant of this many samples' worth of the metric's traffic
   * per live peer. Without it, of two identical peers the one not picked keeps an old (often
   * cold-start) estimate for about decayMs and the other takes every call (4/16 over 20
   * sequential calls, issue 14). Scaled by traffic, a slow peer is probed again about once per
   * staleSamples x peers calls, so a degraded peer's share stays small. Default 8; 0 turns it off.
   */
  staleSamples?: number;
}


const DEFAULT_PRIOR_MS = 100;
const MIN_SAMPLE_WEIGHT = 1 / 16;

/**
 * Peak-EWMA (Finagle, linkerd): cost = latency estimate × (in flight + 1).
 *
 * - A sample above the current estimate replaces it at once (peak-sensitive: a slowing peer is
 *   avoided immediately); a lower sample is blended in with weight 1 − exp(−elapsed/decayMs).
 * - With no samples the estimate decays towards 0 with the same time constant, exactly as the
 *   Finagle/linkerd implementations do by observing a zero on every read. This is what brings a
 *   peer that was penalised and then starved of traffic back into rotation to be measured again.
 *   Reads here are pure (the decay is computed, not stored), so a read changes nothing.
 * - Failures record a penalty rather than their (often tiny) latency, so a peer that refuses
 *   connections in 1 ms looks expensive, not attractive.
 * - Our own aborts (`reason: 'aborted'`) are censored samples: the real latency is at least the
 *   observed one, so they may raise the estimate but never lower it.
 * - Warm-up: the first requests to a new peer pay for connection set-up and the peer's own cold
 *   start (JIT, its first discovery of its upstreams). Under peak sensitivity one such sample
 *   would exile a healthy new instance for about decayMs × ln(sample / typical) while P2C never
 *   picks the worst of a few peers (seen in the example mesh: 0 % of traffic for ~23 s). So the
 *   first `warmupSamples` successes are averaged, each capped at penaltyFactor × the prior;
 *   failures are penalised as usual from the start, so a broken new peer is still avoided.
 */
export function peakEwma(options?: PeakEwmaOptions): LoadMetric {
  const field = 'peakEwma';
  const o = optionsObject(field, options);
  const decayMs = numberOption(`${field}.decayMs`, o.decayMs, 10_000, { min: 0, exclusiveMin: true });
  const penaltyMs = numberOption(`${field}.penaltyMs`, o.penaltyMs, 1000, { min: 0 });
  const penaltyFactor = numberOption(`${field}.penaltyFactor`, o.penaltyFactor, 2, { min: 1 });
  const maxPenaltyMs = numberOption(`${field}.maxPenaltyMs`, o.maxPenaltyMs, Math.max(30_000, penaltyMs), {
    min: penaltyMs,
  });
  let prior: () => number;
  let learn: ((latencyMs: number) => void) | undefined;
  if (typeof o.priorMs === 'function') {
    const read = o.priorMs;
    prior = () => sanitise(read());
  } else if (o.priorMs !== undefined) {
    const fixed = numberOption(`${field}.priorMs`, o.priorMs, DEFAULT_PRIOR_MS, { min: 0 });
    prior = () => fixed;
  } else {
    // Running mean first, then an EWMA over samples (not time): cheap, and it follows drift.
    let mean = DEFAULT_PRIOR_MS;
    let samples = 0;
    prior = () => mean;
    learn = (latencyMs) => {
      samples = samples < 20 ? samples + 1 : samples;
      mean += (latencyMs - mean) / samples;
    };
  }
  const warmupSamples = numberOption(`${field}.warmupSamples`, o.warmupSamples, 3, { min: 0, integer: true });
  const staleSamples = numberOption(`${field}.staleSamples`, o.staleSamples, 8, { min: 0 });
  const traffic: EwmaTraffic = { gapMs: Number.POSITIVE_INFINITY, lastAt: Number.NaN, live: 0 };
  const config: PeakEwmaConfig = {
    decayMs,
    prior,
    penaltyMs,
    penaltyFactor,
    maxPenaltyMs,
    warmupSamples,
    staleSamples,
    traffic,
    learn,
  };
  return new PeakEwmaMetric(config);
}

/** The metric `peakEwma()` returns: its trackers keep their state in one shared `EwmaTable`. */
export class PeakEwmaMetric implements LoadMetric {
  readonly name = 'peak-ewma';
  readonly #table: EwmaTable;

  /** @internal Built by `peakEwma()`. */
  constructor(config: PeakEwmaConfig) {
    this.#table = new EwmaTable(config);
  }

  create(): PeakEwmaTracker {
    return new PeakEwmaTracker(this.#table);
  }

  /**
   * The loads are read from the shared table, so a pick touches no tracker object. A tracker
   * whose slot was freed since the snapshot (its peer left) is read through the tracker, which
   * still answers; a tracker outside the table makes the whole snapshot read trackers.
   */
  loadsOf(peers: readonly PickablePeer[]): LoadReader | undefined {
    const table = this.#table;
    const trackers = peers.map((peer) => peer.tracker);
    const slots: number[] = [];
    for (const tracker of trackers) {
      const slot = tracker instanceof PeakEwmaTracker ? tracker.slotIn(table) : undefined;
      if (slot === undefined) return undefined;
      slots.push(slot);
    }
    const pairs = table.capture(slots);
    return (i, now) => {
      const load = table.loadIfCurrent(pairs, i, now);
      return Number.isNaN(load) ? trackers[i]!.load(now) : load;
    };
  }
}

export class PeakEwmaTracker implements LoadTracker {
  #table: EwmaState;
  #slot: number;
  #released = false;
  /** Successful samples taken during warm-up so far (not read by picks: kept out of the table). */
  #warm = 0;
  // Made on the first start(): most peers of a large service are never called.
  #complete: Complete | undefined;

  /** @internal Built by `peakEwma().create()`. */
  constructor(table: EwmaTable) {
    this.#table = table;
    this.#slot = table.alloc();
  }

  /** @internal Where the state lives while the tracker is in `table`. */
  slotIn(table: EwmaTable): number | undefined {
    return this.#table === table ? this.#slot : undefined;
  }

  get inFlight(): number {
    return this.#table.get(this.#slot, IN_FLIGHT);
  }

  /** The latency estimate at `now` (ms), before the in-flight multiplier. For stats. */
  estimateMs(now: number): number {
    return this.#table.estimateMs(this.#slot, now);
  }

  load(now: number): number {
    return this.#table.load(this.#slot, now);
  }

  start(_now?: number): Complete {
    const inFlight = this.#table.get(this.#slot, IN_FLIGHT);
    this.#table.set(this.#slot, IN_FLIGHT, inFlight + 1);
    return (this.#complete ??= (outcome, now) => {
      const left = this.#table.get(this.#slot, IN_FLIGHT);
      if (left > 0) this.#table.set(this.#slot, IN_FLIGHT, left - 1);
      this.#record(outcome, now);
    });
  }

  /**
   * Gives the shared slot back (the peer left). The tracker goes on working from a private copy,
   * for completions of requests still in flight.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    const shared = this.#table as EwmaTable;
    this.#table = new DetachedEwma(shared, this.#slot);
    shared.free(this.#slot);
    this.#slot = 0;
  }

  #record(outcome: Outcome, now: number): void {
    const observed = sanitise(outcome.latencyMs);
    const config = this.#table.config;
    noteSample(config.traffic, now);
    if (outcome.kind === 'success') {
      if (this.#warm < config.warmupSamples) {
        this.#warmUp(Math.min(observed, config.penaltyFactor * config.prior()), now);
        this.#table.set(this.#slot, PENALISED, 0);
        config.learn?.(observed);
        return;
      }
      config.learn?.(observed);
      this.#observe(observed, now, false);
      this.#table.set(this.#slot, PENALISED, 0);
    } else if (outcome.reason === 'aborted') {
      this.#observe(observed, now, true);
    } else {
      const current = this.estimateMs(now);
      const penalty = Math.min(config.maxPenaltyMs, Math.max(config.penaltyMs, config.penaltyFactor * current));
      this.#observe(Math.max(observed, penalty), now, false);
      this.#table.set(this.#slot, PENALISED, 1);
    }
  }

  /** A plain running mean over the warm-up samples (seeded by any failure penalty recorded before). */
  #warmUp(sample: number, now: number): void {
    const table = this.#table;
    const slot = this.#slot;
    const warm = ++this.#warm;
    const stamp = table.get(slot, STAMP);
    if (Number.isNaN(stamp)) {
      table.set(slot, ESTIMATE, sample);
      table.set(slot, STAMP, now);
      return;
    }
    const current = this.estimateMs(now);
    table.set(slot, ESTIMATE, current + (sample - current) / warm);
    table.set(slot, STAMP, Math.max(stamp, now));
  }

  #observe(sample: number, now: number, censored: boolean): void {
    const table = this.#table;
    const slot = this.#slot;
    const stamp = table.get(slot, STAMP);
    const first = Number.isNaN(stamp);
    const current = this.estimateMs(now);
    if (sample > current) {
      table.set(slot, ESTIMATE, sample);
    } else if (censored) {
      table.set(slot, ESTIMATE, current);
    } else if (first) {
      // The prior was a guess: the first real sample replaces it.
      table.set(slot, ESTIMATE, sample);
    } else {
      const elapsed = Math.max(0, now - stamp);
      // Each sample weighs at least MIN_SAMPLE_WEIGHT: a peer called many times a millisecond
      // follows its latency within a few dozen samples, not only after decayMs of wall time.
      const keep = Math.min(1 - MIN_SAMPLE_WEIGHT, Math.exp(-elapsed / table.config.decayMs));
      table.set(slot, ESTIMATE, current * keep + sample * (1 - keep));
    }
    // A clock that steps back must not make the next decay larger.
    table.set(slot, STAMP, first ? now : Math.max(stamp, now));
  }
}

/** Count-weighted mean of the gap between samples: follows a change of traffic in ~16 samples. */
function noteSample(traffic: EwmaTraffic, now: number): void {
  const gap = now - traffic.lastAt;
  if (gap >= 0) traffic.gapMs = Number.isFinite(traffic.gapMs) ? traffic.gapMs + (gap - traffic.gapMs) / 16 : gap;
  if (!(now < traffic.lastAt)) traffic.lastAt = now;
}

function sanitise(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** Checks a user-supplied metric value enough that a typo fails at construction, not per request. */
export function validateLoadMetric(field: string, metric: unknown): LoadMetric {
  if (
    metric === null ||
    typeof metric !== 'object' ||
    typeof (metric as LoadMetric).create !== 'function' ||
    typeof (metric as LoadMetric).name !== 'string'
  ) {
    throw new InvalidOptionsError(field, 'must be a LoadMetric ({ name, create() }), e.g. peakEwma()');
  }
  return metric as LoadMetric;
}
