import { numberOption, optionsObject } from '@peerlb/registry';
import { parseLoadReport, type LoadReport } from './load-report.js';

/** How a client uses the load its peers report (`endpoint-load-metrics`). */
export interface LoadReportOptions {
  /** A report older than this no longer counts; the peer is treated as typical. Default 2 000 ms. */
  maxAgeMs?: number;
  /**
   * Time constant over which a peer's successive reports are averaged. Smoothing is one guard
   * against herding: a single report does not swing this caller. Default 250 ms.
   */
  smoothingMs?: number;
  /**
   * How strongly utilization moves a peer's cost: cost x exp(gain x (utilization - typical)),
   * where typical is the recent utilization across this client's reports. Default 3 (a peer
   * 0.5 above typical costs 4.5x).
   */
  gain?: number;
}

/**
 * The load reports one client has received, and the rules for using them: age, smoothing, and
 * the typical utilization a peer without a report is taken to have (neither starved nor flooded).
 */
export class ServerLoadBoard {
  readonly maxAgeMs: number;
  readonly smoothingMs: number;
  readonly gain: number;
  /** Time-weighted mean of recent smoothed reports, all peers (NaN before the first). */
  typical = Number.NaN;
  #typicalAt = Number.NaN;

  constructor(options?: LoadReportOptions) {
    const o = optionsObject('loadReports', options);
    this.maxAgeMs = numberOption('loadReports.maxAgeMs', o.maxAgeMs, 2_000, { min: 0, exclusiveMin: true });
    this.smoothingMs = numberOption('loadReports.smoothingMs', o.smoothingMs, 250, { min: 0 });
    this.gain = numberOption('loadReports.gain', o.gain, 3, { min: 0, max: 20 });
  }

  /**
   * Reads a header value and keeps the report on the peer. Returns true when the peer got its
   * first report (its pickers then need rebuilding to see it). Hostile values are ignored.
   */
  record(holder: { serverLoad: PeerServerLoad | undefined }, headerValue: unknown, now: number): boolean {
    if (headerValue === undefined) return false;
    const known = holder.serverLoad;
    // An instance rebuilds its report every few ms: most answers repeat the last string.
    const report = known !== undefined && headerValue === known.raw ? known.last : parseLoadReport(headerValue);
    if (report === undefined) return false;
    const first = known === undefined;
    const state = (holder.serverLoad ??= new PeerServerLoad(this));
    state.raw = typeof headerValue === 'string' ? headerValue : undefined;
    state.update(report, now);
    this.#learn(state.utilization, now);
    return first;
  }

  #learn(u: number, now: number): void {
    if (Number.isNaN(this.typical)) {
      this.typical = u;
    } else {
      const elapsed = Math.max(0, now - this.#typicalAt);
      // Over about a second of reports, by time so a chatty peer does not outvote the others by rate alone.
      const keep = Math.min(1 - 1 / 64, Math.exp(-elapsed / 1_000));
      this.typical = this.typical * keep + u * (1 - keep);
    }
    this.#typicalAt = now;
  }
}

/** One peer's reports as its client sees them. */
export class PeerServerLoad {
  /** Smoothed utilization, 0..1. */
  utilization = 0;
  /** When the last report arrived (client clock, ms). */
  at = Number.NaN;
  last: LoadReport | undefined;
  /** The header value `last` was parsed from. */
  raw: string | undefined;

  constructor(private readonly board: ServerLoadBoard) {}

  update(report: LoadReport, now: number): void {
    if (this.last === undefined) {
      this.utilization = report.utilization;
    } else {
      const smoothing = this.board.smoothingMs;
      const keep = smoothing > 0 ? Math.exp(-Math.max(0, now - this.at) / smoothing) : 0;
      this.utilization = this.utilization * keep + report.utilization * (1 - keep);
    }
    this.last = report;
    if (!(now < this.at)) this.at = now;
  }

  /**
   * What the peer's cost is multiplied by: exp(gain x (utilization - typical)), fading to 1 as
   * the report ages towards `maxAgeMs`; 1 once expired.
   */
  factor(now: number): number {
    const board = this.board;
    const age = now - this.at;
    if (!(age < board.maxAgeMs)) return 1;
    const fade = age > 0 ? 1 - age / board.maxAgeMs : 1;
    return Math.exp(board.gain * (this.utilization - board.typical) * fade);
  }

  /** For stats: the last report and its age. */
  snapshot(now: number): PeerLoadReport {
    const last = this.last!;
    return {
      utilization: last.utilization,
      smoothedUtilization: this.utilization,
      rps: last.rps,
      inflight: last.inflight,
      ageMs: Math.max(0, now - this.at),
      expired: !(now - this.at < this.board.maxAgeMs),
    };
  }
}

/** A peer's last load report as `stats()` shows it. */
export interface PeerLoadReport {
  readonly utilization: number;
  readonly smoothedUtilization: number;
  readonly rps: number | undefined;
  readonly inflight: number | undefined;
  readonly ageMs: number;
  readonly expired: boolean;
}
