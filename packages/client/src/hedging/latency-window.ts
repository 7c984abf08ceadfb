/**
 * Recent call latencies of one service as a histogram, for the percentile a hedge waits for.
 * Buckets grow geometrically (8 per doubling, so a percentile is within about 9 %), from 0.05 ms
 * to beyond the longest timeout a call can have; fixed memory, O(1) to record. The window has two
 * halves: a percentile covers between one half and the whole window, and the older half is
 * dropped as time moves on, so the delay follows the service when it slows down or recovers.
 * A percentile is recomputed at most every `refreshMs`, so asking for it per call is cheap.
 */
const PER_DOUBLING = 8;
const MIN_MS = 0.05;
// 0.05 ms * 2^36 is about 40 days: beyond 2^31 - 1 ms, the longest deadline.
const BUCKETS = 36 * PER_DOUBLING + 1;
const LOG_FACTOR = PER_DOUBLING / Math.LN2;

export class LatencyWindow {
  readonly #halfMs: number;
  readonly #refreshMs: number;
  readonly #minSamples: number;
  #current = new Uint32Array(BUCKETS);
  #previous = new Uint32Array(BUCKETS);
  #currentCount = 0;
  #previousCount = 0;
  #halfStart = Number.NEGATIVE_INFINITY;
  #cachedAt = Number.NEGATIVE_INFINITY;
  #cachedQuantile = Number.NaN;
  #cachedMs: number | undefined;

  constructor(options: { windowMs?: number; refreshMs?: number; minSamples?: number } = {}) {
    this.#halfMs = (options.windowMs ?? 10_000) / 2;
    this.#refreshMs = options.refreshMs ?? 20;
    this.#minSamples = options.minSamples ?? 100;
  }

  /** Records one call's latency at `now` (ms, monotonic). */
  record(latencyMs: number, now: number): void {
    this.#rotate(now);
    this.#current[bucketOf(latencyMs)]!++;
    this.#currentCount++;
  }

  /** Samples in the window now. */
  count(now: number): number {
    this.#rotate(now);
    return this.#currentCount + this.#previousCount;
  }

  /**
   * The latency below which `quantile` (0..1) of the window's calls fell (the upper edge of its
   * bucket), or `undefined` with fewer than `minSamples` samples: too little to go on.
   */
  percentile(quantile: number, now: number): number | undefined {
    if (quantile === this.#cachedQuantile && now - this.#cachedAt < this.#refreshMs && now >= this.#cachedAt) {
      return this.#cachedMs;
    }
    this.#rotate(now);
    const total = this.#currentCount + this.#previousCount;
    let value: number | undefined;
    if (total >= this.#minSamples) {
      const rank = Math.ceil(quantile * total);
      let seen = 0;
      for (let i = 0; i < BUCKETS; i++) {
        seen += this.#current[i]! + this.#previous[i]!;
        if (seen >= rank) {
          value = upperEdge(i);
          break;
        }
      }
    }
    this.#cachedAt = now;
    this.#cachedQuantile = quantile;
    this.#cachedMs = value;
    return value;
  }

  #rotate(now: number): void {
    if (now - this.#halfStart < this.#halfMs) return;
    if (now - this.#halfStart < 2 * this.#halfMs) {
      // One half passed: the current half becomes the previous one.
      const old = this.#previous;
      this.#previous = this.#current;
      this.#previousCount = this.#currentCount;
      old.fill(0);
      this.#current = old;
    } else {
      // The whole window passed (or the first sample): nothing recent is left.
      this.#previous.fill(0);
      this.#current.fill(0);
      this.#previousCount = 0;
    }
    this.#currentCount = 0;
    this.#halfStart = now;
    this.#cachedAt = Number.NEGATIVE_INFINITY;
  }
}

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) * LOG_FACTOR));
}

function upperEdge(bucket: number): number {
  return MIN_MS * Math.exp(bucket / LOG_FACTOR);
}
