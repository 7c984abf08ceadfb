import { describe, expect, it } from 'vitest';
import { FailureReports } from '../src/failure-reports.js';

describe('FailureReports (health function and renewal failures)', () => {
  it('reports the first failure, holds back repeats, and counts them in the next report', () => {
    let now = 0;
    const reports = new FailureReports({ repeatMs: 60_000, minGapMs: 5_000, now: () => now });
    expect(reports.admit('db down')).toEqual({ heldBack: 0 });
    for (let i = 0; i < 100; i++) {
      now += 500;
      expect(reports.admit('db down')).toBeUndefined();
    }
    now = 60_000;
    expect(reports.admit('db down')).toEqual({ heldBack: 100 });
  });

  it('reports a new message after the short gap, but never two reports within it', () => {
    let now = 0;
    const reports = new FailureReports({ repeatMs: 60_000, minGapMs: 5_000, now: () => now });
    expect(reports.admit('a')).toEqual({ heldBack: 0 });
    now = 1_000;
    expect(reports.admit('b')).toBeUndefined();
    now = 5_000;
    expect(reports.admit('b')).toEqual({ heldBack: 1 });
  });
});
