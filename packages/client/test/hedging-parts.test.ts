import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { RequestDeadline, runWithDeadline } from '@peerlb/deadline';
import { HedgeCredit } from '../src/hedging/hedge-credit.js';
import { resolveHedgeOptions } from '../src/hedging/hedge-options.js';
import { LatencyWindow } from '../src/hedging/latency-window.js';
import { inheritDeadline } from '../src/pipeline/inherited-deadline.js';

describe('hedge options', () => {
  it('takes a fixed delay or a percentile, with defaults', () => {
    expect(resolveHedgeOptions({ delayMs: 25 })).toEqual({ delayMs: 25, quantile: undefined, maxExtra: 1, minDelayMs: 1 });
    expect(resolveHedgeOptions({ delayMs: 'p95', maxExtra: 2 })).toMatchObject({ delayMs: undefined, quantile: 0.95, maxExtra: 2 });
    expect(resolveHedgeOptions({ delayMs: 'p99.9' })?.quantile).toBeCloseTo(0.999, 9);
    expect(resolveHedgeOptions(false)).toBeUndefined();
    expect(resolveHedgeOptions(undefined)).toBeUndefined();
  });

  it('refuses bad options naming the field', () => {
    const bad: unknown[] = [{}, { delayMs: -1 }, { delayMs: 'p100' }, { delayMs: 'p10' }, { delayMs: 'fast' }, { delayMs: 5, maxExtra: 0 }, { delayMs: 5, maxExtra: 1.5 }, 'p95', null];
    for (const value of bad) {
      expect(() => resolveHedgeOptions(value as never, 'hedge'), JSON.stringify(value)).toThrow(InvalidOptionsError);
    }
    expect(() => resolveHedgeOptions({ delayMs: 'p9x' } as never, 'hedge')).toThrow(/hedge\.delayMs/);
    expect(() => resolveHedgeOptions({ delayMs: 5, maxExtra: 9 }, 'hedge')).toThrow(/hedge\.maxExtra/);
  });
});

describe('LatencyWindow', () => {
  it('gives no percentile until it has enough samples', () => {
    const w = new LatencyWindow({ minSamples: 20 });
    for (let i = 0; i < 19; i++) w.record(10, i);
    expect(w.percentile(0.95, 19)).toBeUndefined();
    w.record(10, 20);
    expect(w.percentile(0.95, 100)).toBeGreaterThanOrEqual(10);
  });

  it('finds the percentile within a bucket (about 9 %) of the true one', () => {
    const w = new LatencyWindow({ refreshMs: 0 });
    for (let i = 1; i <= 1_000; i++) w.record(i, 0); // uniform 1..1000 ms
    for (const q of [0.5, 0.95, 0.99]) {
      const p = w.percentile(q, 1)!;
      expect(p).toBeGreaterThanOrEqual(q * 1_000);
      expect(p).toBeLessThan(q * 1_000 * 1.1);
    }
  });

  it('follows the service: old latencies leave the window', () => {
    const w = new LatencyWindow({ windowMs: 1_000, refreshMs: 0 });
    for (let i = 0; i < 100; i++) w.record(200, i);
    expect(w.percentile(0.5, 100)!).toBeGreaterThanOrEqual(200);
    for (let i = 0; i < 100; i++) w.record(5, 600 + i);
    for (let i = 0; i < 100; i++) w.record(5, 1_200 + i);
    expect(w.percentile(0.95, 1_300)!).toBeLessThan(6);
    expect(w.count(5_000)).toBe(0);
  });
});

describe('HedgeCredit', () => {
  it('keeps hedging while at least half of the hedges win', () => {
    const c = new HedgeCredit(10, 2, 500);
    for (let i = 0; i < 1_000; i++) {
      expect(c.tryTake()).toBe(true);
      if (i % 2 === 0) c.won();
    }
  });

  it('runs out when hedges lose, then probes once per probeEvery calls', () => {
    const c = new HedgeCredit(10, 2, 500);
    let sent = 0;
    for (let call = 0; call < 10_000; call++) {
      c.onCall();
      if (c.tryTake()) sent++; // every hedge loses
    }
    expect(sent).toBe(10 + Math.floor(10_000 / 500));
  });
});

describe('inheritDeadline', () => {
  it('keeps the call timeout outside a handled request', () => {
    expect(inheritDeadline(1_000, 5)).toEqual({ timeoutMs: 1_000, inherited: false, signal: undefined });
  });

  it('takes the time left minus the allowance when shorter, and the request signal', () => {
    const d = new RequestDeadline(300, 1_000);
    runWithDeadline(d, () => {
      const got = inheritDeadline(30_000, 5, 1_100);
      expect(got.timeoutMs).toBe(195);
      expect(got.inherited).toBe(true);
      expect(got.signal).toBe(d.signal);
      expect(inheritDeadline(50, 5, 1_100)).toMatchObject({ timeoutMs: 50, inherited: false });
      expect(inheritDeadline(30_000, 5, 1_298).timeoutMs).toBeLessThanOrEqual(0);
    });
    d.dispose();
  });
});
