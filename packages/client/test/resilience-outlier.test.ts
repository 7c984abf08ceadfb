import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import type { Outcome } from '../src/balancer/index.js';
import { OutlierDetector, type OutlierDetectionOptions } from '../src/resilience/index.js';

const ok: Outcome = { kind: 'success', latencyMs: 5 };
const refused: Outcome = { kind: 'failure', reason: 'connect', latencyMs: 1 };
const http503: Outcome = { kind: 'failure', reason: 'status', statusCode: 503, latencyMs: 3 };
const http429: Outcome = { kind: 'failure', reason: 'status', statusCode: 429, latencyMs: 3 };
const aborted: Outcome = { kind: 'failure', reason: 'aborted', latencyMs: 50 };

function detector(ids: string[], options: OutlierDetectionOptions = {}): OutlierDetector {
  const d = new OutlierDetector({ consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 2500, ...options });
  for (const id of ids) d.add(id);
  return d;
}

function fail(d: OutlierDetector, id: string, times: number, now: number, outcome: Outcome = refused) {
  let event;
  for (let i = 0; i < times; i++) event = d.record(id, outcome, now) ?? event;
  return event;
}

describe('OutlierDetector', () => {
  it('ejects after the configured consecutive failures, not before', () => {
    const d = detector(['a', 'b', 'c', 'd']);
    expect(fail(d, 'a', 2, 0)).toBeUndefined();
    expect(d.isEjected('a')).toBe(false);
    expect(d.record('a', http503, 10)).toEqual({
      type: 'ejected',
      peerId: 'a',
      at: 10,
      until: 1010,
      ejectionMs: 1000,
      times: 1,
    });
    expect(d.isEjected('a')).toBe(true);
    expect(d.ejectedCount).toBe(1);
  });

  it('a success resets the counter', () => {
    const d = detector(['a', 'b']);
    fail(d, 'a', 2, 0);
    d.record('a', ok, 1);
    expect(fail(d, 'a', 2, 2)).toBeUndefined();
    expect(d.peerState('a')?.consecutiveFailures).toBe(2);
  });

  it('does not count 429s or our own aborts, either way', () => {
    const d = detector(['a', 'b']);
    fail(d, 'a', 2, 0);
    fail(d, 'a', 5, 1, http429);
    fail(d, 'a', 5, 1, aborted);
    expect(d.isEjected('a')).toBe(false);
    expect(d.peerState('a')?.consecutiveFailures).toBe(2);
    expect(d.record('a', refused, 2)?.type).toBe('ejected');
  });

  it('restores a peer when its time is up, and says when that is', () => {
    const d = detector(['a', 'b']);
    fail(d, 'a', 3, 100);
    expect(d.nextRestoreAt()).toBe(1100);
    expect(d.restoreDue(1099)).toEqual([]);
    expect(d.isEjected('a')).toBe(true);
    expect(d.restoreDue(1100)).toEqual([{ type: 'restored', peerId: 'a', at: 1100 }]);
    expect(d.isEjected('a')).toBe(false);
    expect(d.nextRestoreAt()).toBeUndefined();
  });

  it('ejects for longer each time (base x times), capped at maxEjectionMs', () => {
    const d = detector(['a', 'b']);
    let now = 0;
    const durations: number[] = [];
    for (let round = 0; round < 4; round++) {
      const e = fail(d, 'a', 3, now);
      expect(e?.type).toBe('ejected');
      if (e?.type === 'ejected') {
        durations.push(e.ejectionMs);
        now = e.until;
      }
      d.restoreDue(now);
      now += 10; // fails again soon after coming back
    }
    expect(durations).toEqual([1000, 2000, 2500, 2500]);
  });

  it('forgets old ejections: the multiplier drops by one per baseEjectionMs back in service', () => {
    const d = detector(['a', 'b'], { maxEjectionMs: 10_000 });
    fail(d, 'a', 3, 0); // 1000
    d.restoreDue(1000);
    fail(d, 'a', 3, 1000); // 2000
    d.restoreDue(3000);
    // 2.5 base intervals healthy: multiplier 2 - 2 = 0, so the next is a first ejection again.
    const e = fail(d, 'a', 3, 5500);
    expect(e).toMatchObject({ type: 'ejected', ejectionMs: 1000, times: 1 });
  });

  it('never ejects more than maxEjectionPercent of the peers; the next failure ejects once there is room', () => {
    const d = detector(['a', 'b', 'c', 'd'], { maxEjectionPercent: 50 });
    expect(d.maxEjected).toBe(2);
    expect(fail(d, 'a', 3, 0)?.type).toBe('ejected');
    expect(fail(d, 'b', 3, 0)?.type).toBe('ejected');
    expect(fail(d, 'c', 3, 0)).toBeUndefined();
    expect(d.isEjected('c')).toBe(false);
    expect(d.ejectedCount).toBe(2);
    d.restoreDue(1000);
    expect(d.record('c', refused, 1001)?.type).toBe('ejected');
  });

  it('with the cap rounding to zero, ejects nobody unless ejectAtLeastOne', () => {
    const single = detector(['a']);
    expect(single.maxEjected).toBe(0);
    expect(fail(single, 'a', 10, 0)).toBeUndefined();
    const envoy = detector(['a'], { ejectAtLeastOne: true });
    expect(envoy.maxEjected).toBe(1);
    expect(fail(envoy, 'a', 3, 0)?.type).toBe('ejected');
    const tenPercent = detector(['a', 'b', 'c'], { maxEjectionPercent: 10, ejectAtLeastOne: true });
    expect(fail(tenPercent, 'a', 3, 0)?.type).toBe('ejected');
    expect(fail(tenPercent, 'b', 3, 0)).toBeUndefined();
  });

  it('ignores completions while ejected, and for unknown peers', () => {
    const d = detector(['a', 'b']);
    const e = fail(d, 'a', 3, 0);
    fail(d, 'a', 10, 10);
    d.record('a', ok, 20);
    expect(d.peerState('a')).toMatchObject({ ejected: true, ejectedUntil: e?.type === 'ejected' ? e.until : -1 });
    expect(d.record('ghost', refused, 0)).toBeUndefined();
    expect(d.peerState('ghost')).toBeUndefined();
  });

  it('forgets a removed peer, which frees its place under the cap', () => {
    const d = detector(['a', 'b', 'c', 'd']);
    fail(d, 'a', 3, 0);
    fail(d, 'b', 3, 0);
    d.remove('a');
    d.add('e');
    expect(d.size).toBe(4);
    expect(d.nextRestoreAt()).toBe(1000);
    expect(fail(d, 'c', 3, 5)?.type).toBe('ejected');
    expect(d.restoreDue(5000).map((e) => e.peerId).sort()).toEqual(['b', 'c']);
  });

  it('validates its options', () => {
    expect(() => new OutlierDetector({ consecutiveFailures: 0 })).toThrow(InvalidOptionsError);
    expect(() => new OutlierDetector({ consecutiveFailures: 2.5 })).toThrow(/outlierDetection\.consecutiveFailures/);
    expect(() => new OutlierDetector({ baseEjectionMs: 0 })).toThrow(/baseEjectionMs/);
    expect(() => new OutlierDetector({ baseEjectionMs: 1000, maxEjectionMs: 500 })).toThrow(/maxEjectionMs/);
    expect(() => new OutlierDetector({ maxEjectionPercent: 120 })).toThrow(/maxEjectionPercent/);
    expect(() => new OutlierDetector({ ejectAtLeastOne: 'yes' as never })).toThrow(/ejectAtLeastOne/);
    expect(() => new OutlierDetector({}, 'client.outlier')).not.toThrow();
    expect(() => new OutlierDetector({ consecutiveFailures: -1 }, 'client.outlier')).toThrow(/client\.outlier\./);
  });
});
