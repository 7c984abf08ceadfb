import type { HedgePolicy } from './hedge-options.js';
import type { ServiceHedging } from './service-hedging.js';

/** What the call loop offers the hedger of one of its calls. */
export interface HedgeHost {
  /** Nothing has answered yet and the call has not ended. */
  readonly waiting: boolean;
  /** Time left before the call's deadline (Infinity: none). */
  timeLeftMs(now: number): number;
  /**
   * Starts one more attempt on a peer not tried yet, if the picker has one and the shared
   * extra-load budget allows it; false otherwise.
   */
  launchHedge(now: number, delayMs: number): boolean;
  readonly clock: () => number;
}

/**
 * The hedging step of one call: waits `delay` for the first answer, then asks the call loop for
 * one more attempt on another peer, up to `maxExtra` times. The delay is fixed, or a percentile of
 * the service's recent call latency (no hedging until there are enough samples to know it). A
 * hedge goes out only with time left, with the service's hedge credit (hedges must keep winning)
 * and with the shared budget's consent (asked by the loop in `launchHedge`, last).
 */
export class CallHedger {
  #timer: NodeJS.Timeout | undefined;
  #sent = 0;
  #delayMs = 0;

  constructor(
    private readonly policy: HedgePolicy,
    private readonly service: ServiceHedging,
    private readonly host: HedgeHost,
  ) {}

  /** The first attempt went out at `now`. */
  start(now: number): void {
    this.service.credit.onCall();
    const policy = this.policy;
    let delay = policy.delayMs;
    if (delay === undefined) {
      const p = this.service.latency.percentile(policy.quantile!, now);
      if (p === undefined) return;
      delay = Math.max(policy.minDelayMs, p);
    }
    this.#delayMs = delay;
    this.#arm(now);
  }

  /** The call got its answer, from an attempt that took `latencyMs`: a sample for the percentile delay. */
  answered(latencyMs: number, now: number): void {
    this.stop();
    this.service.latency.record(latencyMs, now);
  }

  /** Hedges this call has sent so far. */
  get sent(): number {
    return this.#sent;
  }

  /** The call ended (answered, failed, aborted): no more hedges. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(now: number): void {
    // Not worth a hedge that cannot answer before the deadline.
    if (this.host.timeLeftMs(now) <= this.#delayMs) return;
    this.#timer = setTimeout(() => this.#fire(), Math.max(1, Math.ceil(this.#delayMs)));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    const host = this.host;
    if (!host.waiting) return;
    const now = host.clock();
    if (!(host.timeLeftMs(now) > 0)) return;
    const credit = this.service.credit;
    if (!credit.tryTake()) return;
    if (!host.launchHedge(now, this.#delayMs)) {
      credit.refund();
      return;
    }
    this.#sent++;
    this.service.sent++;
    if (this.#sent < this.policy.maxExtra) this.#arm(now);
  }
}
