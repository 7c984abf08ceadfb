import { durationOption, numberOption, optionsObject } from '@peerlb/registry';

export interface RetryBudgetOptions {
  /** Retries allowed per request seen in the window. Default 0.2 (one retry per five requests). */
  ratio?: number;
  /** A floor, so that a quiet client can still retry: this many per second of window. Default 10. */
  minPerSec?: number;
  /** The sliding window. Default 10 000 ms. */
  windowMs?: number;
}

const SLOTS = 10;

/**
 * The budget of extra load a client may add on top of its callers' requests: retries, and any
 * other extra attempt (a hedge draws on the same object, so the two together stay within it).
 * A retry budget (Finagle `RetryBudget`, linkerd): over a sliding window, retries may not exceed
 * `ratio` × requests + `minPerSec` × window seconds. When peers fail en masse, retries cannot
 * multiply the load beyond `1 + ratio`. Explicit `now`, no timers; O(1) amortised. The window
 * slides by tenths (a request counts for between 0.9 and 1 window).
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #reserve: number;
  readonly #slotMs: number;
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  #requestTotal = 0;
  #retryTotal = 0;
  /** Absolute slot number of the newest slot; -Infinity before the first call. */
  #slot = Number.NEGATIVE_INFINITY;

  constructor(options?: RetryBudgetOptions, field = 'retryBudget') {
    const o = optionsObject(field, options);
    this.#ratio = numberOption(`${field}.ratio`, o.ratio, 0.2, { min: 0, max: 1000 });
    const minPerSec = numberOption(`${field}.minPerSec`, o.minPerSec, 10, { min: 0 });
    const windowMs = durationOption(`${field}.windowMs`, o.windowMs, 10_000, { min: SLOTS });
    this.#slotMs = windowMs / SLOTS;
    this.#reserve = (minPerSec * windowMs) / 1000;
  }

  /** Records one original request (not a retry). */
  deposit(now: number): void {
    const i = this.#advance(now);
    this.#requests[i]!++;
    this.#requestTotal++;
  }

  /** Asks for one retry: true and counted if the budget allows it, false otherwise. */
  tryWithdraw(now: number): boolean {
    const i = this.#advance(now);
    if (this.#allowed() - this.#retryTotal < 1) return false;
    this.#retries[i]!++;
    this.#retryTotal++;
    return true;
  }

  /** Retries still allowed in the window at `now`. */
  balance(now: number): number {
    this.#advance(now);
    return Math.max(0, Math.floor(this.#allowed() - this.#retryTotal));
  }

  #allowed(): number {
    // The epsilon keeps 5 × 0.2 from landing just under 1.
    return this.#ratio * this.#requestTotal + this.#reserve + 1e-9;
  }

  #advance(now: number): number {
    const slot = Math.floor(now / this.#slotMs);
    if (slot > this.#slot) {
      const steps = Math.min(SLOTS, slot - this.#slot);
      for (let k = 1; k <= steps; k++) {
        const i = mod(slot - steps + k, SLOTS);
        this.#requestTotal -= this.#requests[i]!;
        this.#retryTotal -= this.#retries[i]!;
        this.#requests[i] = 0;
        this.#retries[i] = 0;
      }
      this.#slot = slot;
    }
    // A clock that steps back counts into the newest slot.
    return mod(this.#slot, SLOTS);
  }
}

function mod(a: number, n: number): number {
  const r = a % n;
  return r < 0 ? r + n : r;
}
