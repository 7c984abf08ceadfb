/** The settings of a peak-EWMA metric (`peakEwma()` resolves them), shared by its table and trackers. */
export interface PeakEwmaConfig {
  readonly decayMs: number;
  readonly prior: () => number;
  readonly penaltyMs: number;
  readonly penaltyFactor: number;
  readonly maxPenaltyMs: number;
  readonly warmupSamples: number;
  /** Feeds the adaptive prior; absent when the prior is fixed. */
  readonly learn: ((latencyMs: number) => void) | undefined;
}

/**
 * Fields of one slot (32 bytes, so a row never straddles two cache lines): the estimate (ms), its
 * clock stamp (NaN before the first sample), requests in flight, and the slot's epoch.
 */
export const ESTIMATE = 0;
export const STAMP = 1;
export const IN_FLIGHT = 2;
const EPOCH = 3;
const STRIDE = 4;

/** What a tracker reads and writes its state through: a slot of the shared table, or its own copy. */
export interface EwmaState {
  readonly config: PeakEwmaConfig;
  get(slot: number, field: number): number;
  set(slot: number, field: number, value: number): void;
  estimateMs(slot: number, now: number): number;
  load(slot: number, now: number): number;
}

/**
 * The estimate decays towards 0 with time constant decayMs since its stamp (NaN: no sample yet,
 * the prior applies). Pure: reading changes nothing.
 */
function decayedEstimate(config: PeakEwmaConfig, estimate: number, stamp: number, now: number): number {
  if (Number.isNaN(stamp)) return config.prior();
  const elapsed = now - stamp;
  return elapsed > 0 ? estimate * Math.exp(-elapsed / config.decayMs) : estimate;
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
    return slot;
  }

  free(slot: number): void {
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
    return decayedEstimate(this.config, this.data[base + ESTIMATE]!, this.data[base + STAMP]!, now);
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
    this.#values = [from.get(slot, ESTIMATE), from.get(slot, STAMP), from.get(slot, IN_FLIGHT)];
  }

  get(_slot: number, field: number): number {
    return this.#values[field]!;
  }

  set(_slot: number, field: number, value: number): void {
    this.#values[field] = value;
  }

  estimateMs(_slot: number, now: number): number {
    return decayedEstimate(this.config, this.#values[ESTIMATE]!, this.#values[STAMP]!, now);
  }

  load(slot: number, now: number): number {
    return this.estimateMs(slot, now) * (this.#values[IN_FLIGHT]! + 1);
  }
}
