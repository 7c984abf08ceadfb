/**
 * Whether hedges are paying for themselves, so they switch themselves off where they only add
 * load. A hedge is worth sending when it often answers first: a slow tail on one peer (hedges
 * win). When every peer is saturated, a hedge waits in another queue as long as the original
 * and rarely wins: it is pure extra load, at the worst time.
 *
 * Each hedge sent costs one credit and each hedge that wins earns `winRefund` (2) back, capped at
 * `maxCredit`: hedging keeps going while at least half of the hedges win. Out of credit, one
 * credit comes back every `probeEvery` calls, so hedging probes at most that often (0.2 % of
 * calls) and resumes by itself once hedges win again. The shared retry budget still has the last
 * word on each hedge (see `HedgeCredit` users): the two together bound hedges and retries.
 */
export class HedgeCredit {
  #credit: number;
  #calls = 0;

  constructor(
    private readonly maxCredit = 10,
    private readonly winRefund = 2,
    private readonly probeEvery = 500,
  ) {
    this.#credit = maxCredit;
  }

  /** Counts one call (the probe trickle). */
  onCall(): void {
    if (++this.#calls < this.probeEvery) return;
    this.#calls = 0;
    if (this.#credit < 1) this.#credit = Math.min(this.maxCredit, this.#credit + 1);
  }

  /** Takes the credit for one hedge: false when hedges have been losing. */
  tryTake(): boolean {
    if (this.#credit < 1) return false;
    this.#credit--;
    return true;
  }

  /** Gives back a credit taken for a hedge that was not sent after all. */
  refund(): void {
    this.#credit = Math.min(this.maxCredit, this.#credit + 1);
  }

  /** A hedge answered first. */
  won(): void {
    this.#credit = Math.min(this.maxCredit, this.#credit + this.winRefund);
  }

  /** Credit left (for stats and tests). */
  get credit(): number {
    return this.#credit;
  }
}
