import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { RequestDeadline, currentDeadline, runWithDeadline, timeLeftMs } from '../src/index.js';

describe('RequestDeadline', () => {
  it('counts down from its budget and never goes negative', () => {
    const d = new RequestDeadline(100, 1_000);
    expect(d.expiresAt).toBe(1_100);
    expect(d.timeLeftMs(1_040)).toBe(60);
    expect(d.timeLeftMs(2_000)).toBe(0);
    expect(new RequestDeadline(-5, 10).expiresAt).toBe(10);
    expect(new RequestDeadline(Number.NaN, 10).expiresAt).toBe(10);
  });

  it('aborts its signal with a TimeoutError once the budget is spent, not before', async () => {
    const d = new RequestDeadline(60);
    const signal = d.signal;
    expect(signal.aborted).toBe(false);
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    expect(d.timeLeftMs()).toBe(0);
    expect(d.expired).toBe(true);
    expect((signal.reason as DOMException).name).toBe('TimeoutError');
  });

  it('gives an already aborted signal for a spent budget', () => {
    const d = new RequestDeadline(0);
    expect(d.expired).toBe(true);
    expect(d.signal.aborted).toBe(true);
  });

  it('cancel() aborts at once with the reason, also for a signal asked for later', () => {
    const early = new RequestDeadline(10_000);
    const signal = early.signal;
    early.cancel(new Error('gone'));
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).message).toBe('gone');
    const late = new RequestDeadline(10_000);
    late.cancel();
    expect(late.expired).toBe(true);
    expect(late.signal.aborted).toBe(true);
  });

  it('dispose() releases the timer: the signal no longer fires', async () => {
    const d = new RequestDeadline(30);
    const signal = d.signal;
    d.dispose();
    await sleep(80);
    expect(signal.aborted).toBe(false);
  });
});

describe('deadline context', () => {
  it('is visible through async work started inside runWithDeadline, and only there', async () => {
    const d = new RequestDeadline(5_000);
    expect(currentDeadline()).toBeUndefined();
    expect(timeLeftMs()).toBeUndefined();
    const seen = await runWithDeadline(d, async () => {
      await sleep(5);
      await Promise.resolve();
      return new Promise<RequestDeadline | undefined>((resolve) => setImmediate(() => resolve(currentDeadline())));
    });
    expect(seen).toBe(d);
    expect(currentDeadline()).toBeUndefined();
  });

  it('runWithDeadline(undefined) shields background work from the request deadline', () => {
    const d = new RequestDeadline(5_000);
    runWithDeadline(d, () => {
      expect(timeLeftMs()).toBeGreaterThan(4_000);
      runWithDeadline(undefined, () => expect(currentDeadline()).toBeUndefined());
      expect(currentDeadline()).toBe(d);
    });
  });
});
