import { HedgeCredit } from './hedge-credit.js';
import { LatencyWindow } from './latency-window.js';

/** Hedge counters of one service, as `stats()` reports them. */
export interface HedgeStats {
  /** Hedges sent. */
  readonly sent: number;
  /** Hedges that answered first. */
  readonly won: number;
  /** Attempts aborted because another attempt of their call answered first. */
  readonly cancelled: number;
}

/** What hedging keeps per service: recent call latency (for a percentile delay), the credit, counters. */
export class ServiceHedging {
  readonly latency = new LatencyWindow();
  readonly credit = new HedgeCredit();
  sent = 0;
  won = 0;
  cancelled = 0;

  stats(): HedgeStats {
    return { sent: this.sent, won: this.won, cancelled: this.cancelled };
  }
}

export const NO_HEDGES: HedgeStats = Object.freeze({ sent: 0, won: 0, cancelled: 0 });
