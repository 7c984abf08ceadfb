import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { p2c, parseLoadReport, seededRandom, ServerLoadBoard, type PeerServerLoad } from '../src/balancer/index.js';
import { makePeers } from './balancer-support.js';

describe('parseLoadReport (endpoint-load-metrics)', () => {
  it('reads the TEXT form our instances send, and the JSON form', () => {
    expect(parseLoadReport('TEXT application_utilization=0.420, rps_fractional=310.0, named_metrics.inflight=7')).toEqual({
      utilization: 0.42,
      rps: 310,
      inflight: 7,
    });
    expect(parseLoadReport('TEXT cpu_utilization:0.7,rps_fractional:1000')).toEqual({ utilization: 0.7, rps: 1000, inflight: undefined });
    expect(parseLoadReport('JSON {"application_utilization":0.3,"named_metrics":{"inflight":2}}')).toEqual({
      utilization: 0.3,
      rps: undefined,
      inflight: 2,
    });
    expect(parseLoadReport('JSON {"cpuUtilization":0.5,"rpsFractional":12}')?.utilization).toBe(0.5);
    // Several header values: the first is read (as Envoy does).
    expect(parseLoadReport(['TEXT application_utilization=0.1', 'TEXT application_utilization=0.9'])?.utilization).toBe(0.1);
  });

  it('ignores hostile or broken values rather than trusting them', () => {
    for (const bad of [
      undefined,
      42,
      '',
      'application_utilization=0.4',
      'BIN abc',
      'TEXT application_utilization=NaN',
      'TEXT application_utilization=Infinity',
      'TEXT application_utilization=-0.1',
      'TEXT application_utilization=1.5',
      'TEXT application_utilization=0x1',
      'TEXT application_utilization=0.5, application_utilization=0.1',
      'TEXT rps_fractional=10',
      'TEXT application_utilization=0.5, rps_fractional=-3',
      'TEXT application_utilization=0.5, named_metrics.inflight=1e300',
      `TEXT application_utilization=0.5, ${'named_metrics.x=1, '.repeat(30)}`,
      `TEXT application_utilization=0.${'1'.repeat(5000)}`,
      'JSON {"application_utilization":"0.5"}',
      'JSON {"application_utilization":2}',
      'JSON [0.5]',
      'JSON {bad json',
      `JSON {"application_utilization":0.5,"pad":"${'x'.repeat(5000)}"}`,
    ]) {
      expect(parseLoadReport(bad), String(bad).slice(0, 60)).toBeUndefined();
    }
  });

  it('never throws and only returns trusted values, whatever the input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `TEXT ${s}`), fc.json().map((j) => `JSON ${j}`), fc.anything()), (value) => {
        const report = parseLoadReport(value);
        if (report === undefined) return;
        expect(report.utilization).toBeGreaterThanOrEqual(0);
        expect(report.utilization).toBeLessThanOrEqual(1);
        if (report.rps !== undefined) expect(Number.isFinite(report.rps) && report.rps >= 0).toBe(true);
        if (report.inflight !== undefined) expect(Number.isFinite(report.inflight) && report.inflight >= 0).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('ServerLoadBoard', () => {
  const holder = () => ({ serverLoad: undefined as PeerServerLoad | undefined });

  it('keeps the report per peer, smooths it, and lets it fade with age until it expires', () => {
    const board = new ServerLoadBoard({ maxAgeMs: 1000, smoothingMs: 100, gain: 3 });
    const busy = holder();
    const idle = holder();
    expect(board.record(busy, 'TEXT application_utilization=0.9', 0)).toBe(true);
    expect(board.record(idle, 'TEXT application_utilization=0.1', 0)).toBe(true);
    expect(board.record(idle, 'TEXT application_utilization=0.1', 10)).toBe(false);
    expect(busy.serverLoad!.factor(10)).toBeGreaterThan(1);
    expect(idle.serverLoad!.factor(10)).toBeLessThan(1);
    // Fading: half-way to expiry the effect is smaller; expired, none.
    expect(busy.serverLoad!.factor(500)).toBeLessThan(busy.serverLoad!.factor(10));
    expect(busy.serverLoad!.factor(1000)).toBe(1);
    expect(busy.serverLoad!.snapshot(1000)).toMatchObject({ utilization: 0.9, expired: true, ageMs: 1000 });
    // One outlying report moves a smoothed peer only part of the way.
    board.record(idle, 'TEXT application_utilization=1', 20);
    expect(idle.serverLoad!.utilization).toBeLessThan(0.3);
  });

  it('ignores a hostile report without touching the peer', () => {
    const board = new ServerLoadBoard();
    const peer = holder();
    expect(board.record(peer, 'TEXT application_utilization=NaN', 0)).toBe(false);
    expect(peer.serverLoad).toBeUndefined();
  });

  it('names the field of a bad option', () => {
    expect(() => new ServerLoadBoard({ maxAgeMs: 0 })).toThrow(InvalidOptionsError);
    expect(() => new ServerLoadBoard({ gain: -1 })).toThrow(/loadReports\.gain/);
  });
});

describe('P2C with server-reported load', () => {
  it('sends less to a peer that reports saturation, though this caller has not loaded it', () => {
    const balancer = p2c();
    const board = new ServerLoadBoard();
    const peers = makePeers(3, balancer.metric);
    // Identical in this caller's view; one reports a busy event loop (other callers load it).
    board.record(peers[0] as never, 'TEXT application_utilization=0.95', 0);
    board.record(peers[1] as never, 'TEXT application_utilization=0.30', 0);
    board.record(peers[2] as never, 'TEXT application_utilization=0.30', 0);
    const picker = balancer.build(peers);
    const random = seededRandom(7);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      const r = picker.pick({ random, now: 10 });
      if (r.kind === 'peer') counts[peers.indexOf(r.peer)]!++;
    }
    expect(counts[0]! / 3000).toBeLessThan(0.15);
  });

  it('a peer without a report is neither starved nor flooded next to reporting peers', () => {
    const balancer = p2c();
    const board = new ServerLoadBoard();
    const peers = makePeers(3, balancer.metric);
    board.record(peers[0] as never, 'TEXT application_utilization=0.5', 0);
    board.record(peers[1] as never, 'TEXT application_utilization=0.5', 0);
    const picker = balancer.build(peers);
    const random = seededRandom(8);
    let silent = 0;
    for (let i = 0; i < 3000; i++) {
      const r = picker.pick({ random, now: 10 });
      if (r.kind === 'peer' && r.peer === peers[2]) silent++;
    }
    expect(silent / 3000).toBeGreaterThan(0.25);
    expect(silent / 3000).toBeLessThan(0.42);
  });

  it('serverLoad: false ignores reports', () => {
    const balancer = p2c({ serverLoad: false });
    const board = new ServerLoadBoard();
    const peers = makePeers(2, balancer.metric);
    board.record(peers[0] as never, 'TEXT application_utilization=1', 0);
    board.record(peers[1] as never, 'TEXT application_utilization=0', 0);
    const picker = balancer.build(peers);
    const random = seededRandom(9);
    let first = 0;
    for (let i = 0; i < 2000; i++) {
      const r = picker.pick({ random, now: 10 });
      if (r.kind === 'peer' && r.peer === peers[0]) first++;
    }
    expect(first / 2000).toBeGreaterThan(0.4);
  });
});
