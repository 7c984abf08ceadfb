import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { RequestDeadline, runWithDeadline } from '@peerlb/deadline';
import { CallHedger, type HedgeHost } from '../src/hedging/call-hedger.js';
import { HedgeCredit } from '../src/hedging/hedge-credit.js';
import { ServiceHedging } from '../src/hedging/service-hedging.js';
import { resolveHedgeOptions } from '../src/hedging/hedge-options.js';
import { LatencyWindow } from '../src/hedging/latency-window.js';
import { inheritDeadline } from '../src/call/inherited-deadline.js';

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

describe('CallHedger', () => {
  const host = (over: Partial<HedgeHost> = {}) => {
    const launched: number[] = [];
    const h: HedgeHost & { launched: number[]; waitingNow: boolean } = {
      launched,
      waitingNow: true,
      get waiting() {
        return this.waitingNow;
      },
      timeLeftMs: () => 10_000,
      launchHedge: (now) => {
        launched.push(now);
        return true;
      },
      clock: () => performance.now(),
      ...over,
    };
    return h;
  };

  it('sends up to maxExtra hedges, one per delay, while nothing has answered', async () => {
    const h = host();
    const svc = new ServiceHedging();
    const hedger = new CallHedger(resolveHedgeOptions({ delayMs: 20, maxExtra: 2 })!, svc, h);
    hedger.start(h.clock());
    await sleep(150);
    expect(h.launched).toHaveLength(2);
    expect(svc.sent).toBe(2);
    expect(h.launched[1]! - h.launched[0]!).toBeGreaterThanOrEqual(15);
  });

  it('sends nothing once the call has its answer, or without time left for the delay', async () => {
    const answered = host();
    const hedger = new CallHedger(resolveHedgeOptions({ delayMs: 20 })!, new ServiceHedging(), answered);
    hedger.start(answered.clock());
    answered.waitingNow = false;
    const late = host({ timeLeftMs: () => 10 });
    new CallHedger(resolveHedgeOptions({ delayMs: 20 })!, new ServiceHedging(), late).start(late.clock());
    await sleep(80);
    expect(answered.launched).toHaveLength(0);
    expect(late.launched).toHaveLength(0);
  });

  it('waits for a percentile of recent call latency, and not at all before it knows one', async () => {
    const svc = new ServiceHedging();
    const h = host();
    new CallHedger(resolveHedgeOptions({ delayMs: 'p95' })!, svc, h).start(h.clock());
    await sleep(40);
    expect(h.launched).toHaveLength(0);
    const now = h.clock();
    for (let i = 0; i < 100; i++) svc.latency.record(30, now);
    const started = h.clock();
    new CallHedger(resolveHedgeOptions({ delayMs: 'p95' })!, svc, h).start(started);
    await sleep(120);
    expect(h.launched).toHaveLength(1);
    expect(h.launched[0]! - started).toBeGreaterThanOrEqual(29);
  });

  it('gives the credit back when the loop could not launch (no other peer, no budget)', async () => {
    const svc = new ServiceHedging();
    const h = host({ launchHedge: () => false });
    new CallHedger(resolveHedgeOptions({ delayMs: 5 })!, svc, h).start(h.clock());
    await sleep(40);
    expect(svc.sent).toBe(0);
    expect(svc.credit.credit).toBe(10);
  });
});
