import type { IncomingMessage, ServerResponse } from 'node:http';
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import { InvalidOptionsError } from '@peerlb/registry';
import type { ServingHandler, ServingStep } from './serving-step.js';

/** The ORCA per-answer load report header (Envoy, gRPC). */
export const LOAD_REPORT_HEADER = 'endpoint-load-metrics';

export interface LoadReportOptions {
  /** Event-loop utilization is measured over about this long. Default 1 000 ms. */
  windowMs?: number;
  /** The header value is recomputed at most this often; answers in between reuse it. Default 5 ms. */
  refreshMs?: number;
  /** Also report event-loop delay (p99, ms) as `named_metrics.eld_p99_ms`. Default false. */
  eventLoopDelay?: boolean;
}

/** Samples kept per window: utilization covers between windowMs and windowMs * (1 + 1/SLOTS). */
const SLOTS = 8;

interface Sample {
  at: number;
  elu: EventLoopUtilization;
  started: number;
}

/**
 * Measures this process's load and keeps the header value for it: event-loop utilization over a
 * sliding window (deltas of `performance.eventLoopUtilization()`), requests per second, requests
 * in flight, and optionally event-loop delay. One reporter per process is enough; each answer
 * reads the cached string, which is rebuilt at most every `refreshMs`.
 */
export class LoadReporter {
  readonly windowMs: number;
  readonly refreshMs: number;
  private readonly slotMs: number;
  private readonly samples: Sample[] = [];
  private readonly delay: IntervalHistogram | undefined;
  private inflight = 0;
  private started = 0;
  private builtAt = Number.NEGATIVE_INFINITY;
  private value = '';
  private lastUtilization = 0;

  /** Bound once so counting a finished answer allocates nothing per request. */
  readonly finished = (): void => {
    this.inflight--;
  };

  constructor(options: LoadReportOptions = {}) {
    this.windowMs = positive(options.windowMs, 'loadReport.windowMs', 1_000);
    this.refreshMs = positive(options.refreshMs, 'loadReport.refreshMs', 5);
    if (options.eventLoopDelay !== undefined && typeof options.eventLoopDelay !== 'boolean') {
      throw new InvalidOptionsError('loadReport.eventLoopDelay', 'must be true or false');
    }
    this.slotMs = this.windowMs / SLOTS;
    if (options.eventLoopDelay === true) {
      // The histogram samples on its own timer, which does not keep the process alive.
      this.delay = monitorEventLoopDelay({ resolution: 10 });
      this.delay.enable();
    }
  }

  /** Counts a request from now until its response closes. */
  begin(res: ServerResponse): void {
    this.inflight++;
    this.started++;
    res.on('close', this.finished);
  }

  /** Requests started and not yet closed. */
  get inFlight(): number {
    return this.inflight;
  }

  /** Event-loop utilization (0..1) as of the last header rebuild. */
  get utilization(): number {
    return this.lastUtilization;
  }

  /** The header value, rebuilt when older than `refreshMs`. */
  header(now: number = performance.now()): string {
    if (now - this.builtAt >= this.refreshMs) this.rebuild(now);
    return this.value;
  }

  close(): void {
    this.delay?.disable();
  }

  private rebuild(now: number): void {
    this.builtAt = now;
    const elu = performance.eventLoopUtilization();
    const samples = this.samples;
    const last = samples[samples.length - 1];
    if (last === undefined || now - last.at >= this.slotMs) {
      samples.push({ at: now, elu, started: this.started });
      // Keep the newest sample older than the window as the base; drop the ones before it.
      while (samples.length > 2 && now - samples[1]!.at >= this.windowMs) samples.shift();
      if (this.delay && now - samples[0]!.at >= this.windowMs) this.delay.reset();
    }
    const base = samples[0]!;
    const span = now - base.at;
    let utilization = 0;
    let rps = 0;
    if (span > 0) {
      const d = performance.eventLoopUtilization(elu, base.elu);
      utilization = clamp01(d.utilization);
      rps = ((this.started - base.started) * 1000) / span;
    }
    this.lastUtilization = utilization;
    let text = `TEXT application_utilization=${utilization.toFixed(3)}, rps_fractional=${rps.toFixed(1)}, named_metrics.inflight=${this.inflight}`;
    if (this.delay) {
      const p99 = this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0;
      text += `, named_metrics.eld_p99_ms=${p99.toFixed(1)}`;
    }
    this.value = text;
  }
}

/** The serving step: counts the request and sets the header before the handler runs. */
export function loadReportStep(reporter: LoadReporter): ServingStep {
  return {
    name: 'load-report',
    handle(req: IncomingMessage, res: ServerResponse, next: ServingHandler) {
      reporter.begin(res);
      res.setHeader(LOAD_REPORT_HEADER, reporter.header());
      return next(req, res);
    },
    close: () => reporter.close(),
  };
}

function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

function positive(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionsError(field, `must be a positive number of milliseconds, got ${String(value)}`);
  }
  return value;
}
