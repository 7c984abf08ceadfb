/** The settings of a peak-EWMA metric (`peakEwma()` resolves them), shared by its table and trackers. */
export interface PeakEwmaConfig {
  readonly decayMs: number;
  readonly prior: () => number;
  readonly penaltyMs: number;
  readonly penaltyFactor: number;
  readonly maxPenaltyMs: number;
  readonly warmupSamples: number;
  readonly staleSamples: number;
  readonly traffic: EwmaTraffic;
  /** Feeds the adaptive prior; absent when the prior is fixed. */
  readonly learn: ((latencyMs: number) => void) | undefined;
}

/** How fast a metric's samples arrive, shared by its trackers (for the stale decay). */
export interface EwmaTraffic {
  /** Moving mean of the time between two recorded samples (Infinity before two). */
  gapMs: number;
  lastAt: number;
  /** Trackers holding a slot of the table. */
  live: number;
}

/**
 * Fields of one slot (64 bytes, so a row never straddles two cache lines): the estimate (ms), its
 * clock stamp (NaN before the first sample), requests in flight, the slot's epoch, and whether
 * the last sample was a failure's penalty (1) or not (0). Three fields are spare.
 */
export const ESTIMATE = 0;
export const STAMP = 1;
export const IN_FLIGHT = 2;
const EPOCH = 3;
export const PENALISED = 4;
const STRIDE = 8;

/** What a tracker reads and writes its state through: a slot of the shared table, or its own copy. */
export interface EwmaState {
  readonly config: PeakEwmaConfig;
  get(slot: number, field: number): number;
  set(slot: number, field: number, value: number): void;
  estimateMs(slot: number, now: number): number;
  load(slot: number, now: number): number;
}

/**
 * The estimate decays towards 0 since its stamp (NaN: no sample yet, the prior applies), with
 * time constant decayMs, or, after a success and with nothing in flight, `staleSamples` samples'
 * worth of the metric's traffic per live peer when that is shorter (see
 * `PeakEwmaOptions.staleSamples`). Pure: reading changes nothing.
 */
function decayedEstimate(
  config: PeakEwmaConfig,
  estimate: number,
  stamp: number,
  penalised: number,
  inFlight: number,
  now: number,
): number {
  if (Number.isNaN(stamp)) return config.prior();
  const elapsed = now - stamp;
  if (!(elapsed > 0)) return estimate;
  // The slow decay when the estimate is a failure's penalty (a peer that fails fast must not be
  // probed often), or when a request is in flight: the peer is being measured, its answer is
  // pending. Otherwise a slow peer's estimate would melt while its slow answers are on the way
  // and it would be sent many more (scenario 4: 1.9 % of requests to the 1000 ms peer, not 0.1 %).
  if (penalised === 1 || inFlight > 0) return estimate * Math.exp(-elapsed / config.decayMs);
  const traffic = config.traffic;
  const staleMs = config.staleSamples * Math.max(1, traffic.live) * traffic.gapMs;
  const tau = staleMs > 0 && staleMs < config.decayMs ? staleMs : config.decayMs;
  return estimate * Math.exp(-elapsed / tau);
}

/**
 * The peak-EWMA state of every tracker of one metric, side by side in one `Float64Array` (32
 * bytes a tracker). A P2C pick reads two random peers' state: among 10,000 peers, two tracker
 * objects and the boxed numbers they hold were rarely in CPU cache, and the pick cost 2.2-2.7x
 * what it cost among 10; from one contiguous table it is read like an array.
 *
 * A tracker owns a slot until its peer leaves (`PeakEwmaTracker.release`); a freed slot is
 * reused, and its epoch is bumped so a picker that captured the slot can tell (see `capture`).
 * The epoch sits in the row itself, so checking it costs no extra memory read.
 */
export class EwmaTable implements EwmaState {
  data: Float64Array;
  readonly #free: number[] = [];
  #used = 0;

  constructor(
    readonly config: PeakEwmaConfig,
    capacity = 16,
  ) {
    this.data = new Float64Array(capacity * STRIDE);
  }

  /** A slot with no sample and nothing in flight. */
  alloc(): number {
    const slot = this.#free.length > 0 ? this.#free.pop()! : this.#used++;
    if ((slot + 1) * STRIDE > this.data.length) this.#grow();
    const base = slot * STRIDE;
    const data = this.data;
    data[base + ESTIMATE] = 0;
    data[base + STAMP] = Number.NaN;
    data[base + IN_FLIGHT] = 0;
    data[base + PENALISED] = 0;
    this.config.traffic.live++;
    return slot;
  }

  free(slot: number): void {
    this.config.traffic.live--;
    this.data[slot * STRIDE + EPOCH]!++;
    this.#free.push(slot);
  }

  get(slot: number, field: number): number {
    return this.data[slot * STRIDE + field]!;
  }

  set(slot: number, field: number, value: number): void {
    this.data[slot * STRIDE + field] = value;
  }

  /** The latency estimate of `slot` at `now` (ms), before the in-flight multiplier. */
  estimateMs(slot: number, now: number): number {
    const base = slot * STRIDE;
    const data = this.data;
    return decayedEstimate(
      this.config,
      data[base + ESTIMATE]!,
      data[base + STAMP]!,
      data[base + PENALISED]!,
      data[base + IN_FLIGHT]!,
      now,
    );
  }

  /** Peak-EWMA cost: estimate × (in flight + 1). */
  load(slot: number, now: number): number {
    return this.estimateMs(slot, now) * (this.data[slot * STRIDE + IN_FLIGHT]! + 1);
  }

  /**
   * For a picker snapshot: each slot with its epoch now, side by side (`[slot, epoch, ...]`), so
   * `loadIfCurrent` reads one pair of the snapshot and one row of the table.
   */
  capture(slots: readonly number[]): Float64Array {
    const pairs = new Float64Array(slots.length * 2);
    for (let i = 0; i < slots.length; i++) {
      pairs[2 * i] = slots[i]!;
      pairs[2 * i + 1] = this.data[slots[i]! * STRIDE + EPOCH]!;
    }
    return pairs;
  }

  /** The load of the i-th captured slot, or NaN when it was freed since (it holds another tracker now). */
  loadIfCurrent(pairs: Float64Array, i: number, now: number): number {
    const slot = pairs[2 * i]!;
    if (this.data[slot * STRIDE + EPOCH] !== pairs[2 * i + 1]) return Number.NaN;
    return this.load(slot, now);
  }

  #grow(): void {
    const data = new Float64Array(this.data.length * 2);
    data.set(this.data);
    this.data = data;
  }
}

/**
 * A released tracker's state, copied out of the table: a handful of numbers, because a big update
 * releases 10,000 trackers at once, and completions of requests still in flight land here.
 */
export class DetachedEwma implements EwmaState {
  readonly config: PeakEwmaConfig;
  readonly #values: number[];

  constructor(from: EwmaState, slot: number) {
    this.config = from.config;
    // Indexed by field: the epoch (3) is not kept.
    this.#values = [from.get(slot, ESTIMATE), from.get(slot, STAMP), from.get(slot, IN_FLIGHT), 0, from.get(slot, PENALISED)];
  }

  get(_slot: number, field: number): number {
    return this.#values[field]!;
  }

  set(_slot: number, field: number, value: number): void {
    this.#values[field] = value;
  }

  estimateMs(_slot: number, now: number): number {
    const v = this.#values;
    return decayedEstimate(this.config, v[ESTIMATE]!, v[STAMP]!, v[PENALISED]!, v[IN_FLIGHT]!, now);
  }

  load(slot: number, now: number): number {
    return this.estimateMs(slot, now) * (this.#values[IN_FLIGHT]! + 1);
  }
}
