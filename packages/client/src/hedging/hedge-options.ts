import { InvalidOptionsError, MAX_DURATION_MS, numberOption, optionsObject } from '@peerlb/registry';

/** A percentile of the service's recent call latency, e.g. `'p95'`, `'p99.5'`. */
export type LatencyPercentile = `p${number}`;

export interface HedgeOptions {
  /**
   * How long the first attempt may go unanswered before a hedge is sent to another peer: a fixed
   * number of milliseconds, or a percentile of the service's recent call latency (`'p95'`: hedge
   * the calls slower than 95 % of recent ones, about 5 % extra requests).
   */
  delayMs: number | LatencyPercentile;
  /** Most hedges one call may send (default 1, at most 4). */
  maxExtra?: number;
  /** Floor of a percentile delay (default 1 ms), so a very fast service is not hedged at once. */
  minDelayMs?: number;
}

/** Checked hedge options. */
export interface HedgePolicy {
  /** Fixed delay, when not a percentile. */
  readonly delayMs: number | undefined;
  /** The percentile as a fraction (0.95), when the delay follows live latency. */
  readonly quantile: number | undefined;
  readonly maxExtra: number;
  readonly minDelayMs: number;
}

const PERCENTILE = /^p(\d{1,2}(?:\.\d{1,3})?)$/;

/**
 * `hedge` of the client or of one call: `undefined` or `false` is no hedging. The percentile must
 * lie in [50, 99.999]: hedging below the median would double most calls.
 */
export function resolveHedgeOptions(value: HedgeOptions | false | undefined, field = 'hedge'): HedgePolicy | undefined {
  if (value === undefined || value === false) return undefined;
  const o = optionsObject(field, value);
  const delay = o.delayMs;
  let delayMs: number | undefined;
  let quantile: number | undefined;
  if (delay === undefined) {
    throw new InvalidOptionsError(`${field}.delayMs`, "is required: milliseconds, or a percentile such as 'p95'");
  }
  if (typeof delay === 'string') {
    const match = PERCENTILE.exec(delay);
    const p = match === null ? Number.NaN : Number(match[1]);
    if (!(p >= 50 && p < 100)) {
      throw new InvalidOptionsError(`${field}.delayMs`, `must be milliseconds or a percentile 'p50'..'p99.999', got ${JSON.stringify(delay.slice(0, 20))}`);
    }
    quantile = p / 100;
  } else {
    delayMs = numberOption(`${field}.delayMs`, delay, 0, { min: 0, max: MAX_DURATION_MS });
  }
  return Object.freeze({
    delayMs,
    quantile,
    maxExtra: numberOption(`${field}.maxExtra`, o.maxExtra, 1, { min: 1, max: 4, integer: true }),
    minDelayMs: numberOption(`${field}.minDelayMs`, o.minDelayMs, 1, { min: 0, max: MAX_DURATION_MS }),
  });
}

/**
 * The hedging of one call: its own `hedge` option (validated), else the client's; none for a call
 * that may not be repeated (`eligible`: idempotent, and a body that can be sent again).
 */
export function hedgeForCall(
  clientPolicy: HedgePolicy | undefined,
  callOption: HedgeOptions | false | undefined,
  eligible: boolean,
): HedgePolicy | undefined {
  const policy = callOption === undefined ? clientPolicy : resolveHedgeOptions(callOption, 'hedge');
  return eligible ? policy : undefined;
}
