import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { leastRequestsLoad, p2c, peakEwma, PeakEwmaTracker, seededRandom, trackerLoads, twoChoices } from '../src/balancer/index.js';
import { makePeers, simulate } from './balancer-support.js';

describe('leastRequestsLoad', () => {
  it('is the number of requests in flight', () => {
    const t = leastRequestsLoad().create();
    expect(t.load(0)).toBe(0);
    const a = t.start(0);
    const b = t.start(0);
    expect(t.inFlight).toBe(2);
    expect(t.load(0)).toBe(2);
    a({ kind: 'success', latencyMs: 1 }, 1);
    b({ kind: 'failure', reason: 'connect', latencyMs: 1 }, 1);
    expect(t.load(5)).toBe(0);
  });

  it('never goes below zero when a completion is reported twice', () => {
    const t = leastRequestsLoad().create();
    const done = t.start(0);
    done({ kind: 'success', latencyMs: 1 }, 1);
    done({ kind: 'success', latencyMs: 1 }, 1);
    expect(t.inFlight).toBe(0);
  });

  it('hands out the same completion callback every time (no per-request allocation)', () => {
    const t = leastRequestsLoad().create();
    expect(t.start(0)).toBe(t.start(0));
  });
});

describe('peakEwma', () => {
  const tracker = (options?: Parameters<typeof peakEwma>[0]) => peakEwma(options).create() as PeakEwmaTracker;

  it('uses the prior until the first sample, times (in flight + 1)', () => {
    const t = tracker({ priorMs: 40 });
    expect(t.load(0)).toBe(40);
    t.start(0);
    t.start(0);
    expect(t.load(1_000_000)).toBe(120);
  });

  it('accepts a prior callback, read until the first sample', () => {
    let prior = 10;
    const t = tracker({ priorMs: () => prior });
    expect(t.load(0)).toBe(10);
    prior = 30;
    expect(t.load(0)).toBe(30);
    t.start(0)({ kind: 'success', latencyMs: 7 }, 5);
    prior = 1000;
    expect(t.estimateMs(5)).toBe(7);
  });

  it('replaces the estimate at once with a higher sample (peak sensitivity)', () => {
    const t = tracker({ priorMs: 10, decayMs: 1000, warmupSamples: 0 });
    t.start(0)({ kind: 'success', latencyMs: 10 }, 0);
    t.start(0)({ kind: 'success', latencyMs: 500 }, 1);
    expect(t.estimateMs(1)).toBe(500);
  });

  it('moves towards a lower sample with weight 1 - exp(-elapsed/decayMs)', () => {
    const decayMs = 10_000;
    const t = tracker({ decayMs, warmupSamples: 0, staleSamples: 0 });
    t.start(0)({ kind: 'success', latencyMs: 100 }, 0);
    t.start(0)({ kind: 'success', latencyMs: 10 }, 1000);
    const keep = Math.exp(-1000 / decayMs);
    const decayed = 100 * keep;
    expect(t.estimateMs(1000)).toBeCloseTo(decayed * keep + 10 * (1 - keep), 9);
  });

  it('averages a new peer\'s first samples, capped, so one cold request does not exile it (mesh report)', () => {
    const t = tracker({ priorMs: 12, decayMs: 10_000, staleSamples: 0 });
    // Cold start: connection set-up and the peer's own warm-up make the first answer slow.
    t.start(0)({ kind: 'success', latencyMs: 120 }, 0);
    expect(t.estimateMs(0)).toBe(24); // capped at penaltyFactor (2) x prior
    t.start(0)({ kind: 'success', latencyMs: 12 }, 10);
    t.start(0)({ kind: 'success', latencyMs: 12 }, 20);
    expect(t.estimateMs(20)).toBeCloseTo(16, 1);
    // Warm-up over: peak sensitivity is back.
    t.start(0)({ kind: 'success', latencyMs: 300 }, 30);
    expect(t.estimateMs(30)).toBe(300);
  });

  it('still penalises failures during warm-up', () => {
    const t = tracker({ priorMs: 12 });
    t.start(0)({ kind: 'failure', reason: 'connect', latencyMs: 1 }, 0);
    expect(t.estimateMs(0)).toBe(1000);
  });

  it('decays towards zero while no sample arrives, so a starved peer is tried again', () => {
    const t = tracker({ decayMs: 1000 });
    t.start(0)({ kind: 'success', latencyMs: 100 }, 0);
    expect(t.estimateMs(0)).toBe(100);
    expect(t.estimateMs(1000)).toBeCloseTo(100 / Math.E, 9);
    expect(t.estimateMs(20_000)).toBeLessThan(0.001);
    // Reads are pure: reading did not move the estimate.
    expect(t.estimateMs(1000)).toBeCloseTo(100 / Math.E, 9);
  });

  it('records a penalty, not the tiny latency, for a fast failure', () => {
    const t = tracker({ priorMs: 5, penaltyMs: 1000 });
    t.start(0)({ kind: 'success', latencyMs: 5 }, 0);
    t.start(0)({ kind: 'failure', reason: 'connect', latencyMs: 1 }, 1);
    expect(t.estimateMs(1)).toBe(1000);
    const u = tracker({ priorMs: 5, penaltyMs: 1000 });
    u.start(0)({ kind: 'failure', reason: 'status', statusCode: 503, latencyMs: 2 }, 0);
    expect(u.estimateMs(0)).toBe(1000);
  });

  it('penalises a slow service too: at least penaltyFactor x the current estimate, capped', () => {
    const t = tracker({ penaltyMs: 1000, penaltyFactor: 2, maxPenaltyMs: 10_000, decayMs: 1e12, warmupSamples: 0 });
    t.start(0)({ kind: 'success', latencyMs: 3000 }, 0);
    t.start(0)({ kind: 'failure', reason: 'status', statusCode: 429, latencyMs: 3 }, 0);
    expect(t.estimateMs(0)).toBe(6000);
    t.start(0)({ kind: 'failure', reason: 'reset', latencyMs: 3 }, 0);
    expect(t.estimateMs(0)).toBe(10_000);
    // An observed latency above the cap is still recorded as observed.
    t.start(0)({ kind: 'failure', reason: 'timeout', latencyMs: 25_000 }, 0);
    expect(t.estimateMs(0)).toBe(25_000);
  });

  it('treats our own aborts as censored samples: may raise, never lower', () => {
    const t = tracker({ decayMs: 1e12, staleSamples: 0 });
    t.start(0)({ kind: 'success', latencyMs: 100 }, 0);
    t.start(0)({ kind: 'failure', reason: 'aborted', latencyMs: 5 }, 10);
    expect(t.estimateMs(10)).toBeCloseTo(100, 6);
    t.start(0)({ kind: 'failure', reason: 'aborted', latencyMs: 400 }, 20);
    expect(t.estimateMs(20)).toBe(400);
  });

  it('learns its default prior from the samples of its sibling trackers', () => {
    const metric = peakEwma();
    const a = metric.create() as PeakEwmaTracker;
    expect(a.estimateMs(0)).toBe(100);
    for (let i = 0; i < 50; i++) a.start(0)({ kind: 'success', latencyMs: 20 }, i);
    const fresh = metric.create() as PeakEwmaTracker;
    expect(fresh.estimateMs(100)).toBeCloseTo(20, 6);
    // Failures do not teach the prior.
    a.start(0)({ kind: 'failure', reason: 'connect', latencyMs: 1 }, 60);
    expect(fresh.estimateMs(100)).toBeCloseTo(20, 6);
  });

  it('rejects invalid options with the field named', () => {
    expect(() => peakEwma({ decayMs: 0 })).toThrow(InvalidOptionsError);
    expect(() => peakEwma({ decayMs: 0 })).toThrow(/peakEwma\.decayMs/);
    expect(() => peakEwma({ priorMs: -1 })).toThrow(/peakEwma\.priorMs/);
    expect(() => peakEwma({ penaltyFactor: 0.5 })).toThrow(/peakEwma\.penaltyFactor/);
    expect(() => peakEwma({ penaltyMs: 2000, maxPenaltyMs: 1000 })).toThrow(/peakEwma\.maxPenaltyMs/);
    expect(() => peakEwma({ warmupSamples: 1.5 })).toThrow(/peakEwma\.warmupSamples/);
    expect(() => peakEwma(null as never)).toThrow(/peakEwma/);
  });
});

describe('P2C over peak-EWMA (simulated load)', () => {
  const run = (sims: (peers: ReturnType<typeof makePeers>) => Parameters<typeof simulate>[1], seed: number) => {
    const balancer = p2c();
    const peers = makePeers(3, balancer.metric);
    const picker = balancer.build(peers);
    return simulate(picker, sims(peers), { requests: 20_000, intervalMs: 1, random: seededRandom(seed) });
  };

  it('sends a slow peer less traffic than fast ones', () => {
    const counts = run(
      ([a, b, c]) => [
        { peer: a!, latencyMs: 60 },
        { peer: b!, latencyMs: 10 },
        { peer: c!, latencyMs: 10 },
      ],
      1,
    );
    const slow = counts.get('p0')! / 20_000;
    const fast1 = counts.get('p1')! / 20_000;
    const fast2 = counts.get('p2')! / 20_000;
    expect(slow).toBeLessThan(0.08);
    expect(fast1).toBeGreaterThan(0.35);
    expect(fast2).toBeGreaterThan(0.35);
  });

  it('does not let a fast-failing peer attract traffic', () => {
    const counts = run(
      ([a, b, c]) => [
        { peer: a!, latencyMs: 1, failing: true },
        { peer: b!, latencyMs: 20 },
        { peer: c!, latencyMs: 20 },
      ],
      2,
    );
    expect(counts.get('p0')! / 20_000).toBeLessThan(0.01);
  });

  it('shares evenly between equal peers', () => {
    const counts = run((peers) => peers.map((peer) => ({ peer, latencyMs: 15 })), 3);
    for (const id of ['p0', 'p1', 'p2']) {
      expect(counts.get(id)! / 20_000).toBeGreaterThan(0.28);
      expect(counts.get(id)! / 20_000).toBeLessThan(0.39);
    }
  });

  it('gives a new peer a fair share: neither swamped nor starved', () => {
    const balancer = p2c();
    const metric = balancer.metric!;
    const old = makePeers(2, metric, 'old');
    const random = seededRandom(4);
    simulate(
      balancer.build(old),
      old.map((peer) => ({ peer, latencyMs: 20 })),
      { requests: 5000, intervalMs: 1, random },
    );
    const [fresh] = makePeers(1, metric, 'new');
    const all = [...old, fresh!];
    const counts = simulate(
      balancer.build(all),
      all.map((peer) => ({ peer, latencyMs: 20 })),
      { requests: 3000, intervalMs: 1, random, startAt: 5000 },
    );
    const share = counts.get('new0')! / 3000;
    expect(share).toBeGreaterThan(0.2);
    expect(share).toBeLessThan(0.45);
  });
});

describe('peakEwma trackers in one shared table', () => {
  const success = (latencyMs: number) => ({ kind: 'success', latencyMs }) as const;

  it('keeps a released tracker working on its own copy, and gives its slot to the next tracker', () => {
    const metric = peakEwma({ warmupSamples: 0, decayMs: 1e12, priorMs: 100, staleSamples: 0 });
    const a = metric.create() as PeakEwmaTracker;
    a.start(0)(success(30), 0);
    const pending = a.start(0);
    a.release();
    a.release();
    // A new tracker takes the freed slot and starts clean: nothing of a's state leaks into it.
    const b = metric.create() as PeakEwmaTracker;
    expect(b.inFlight).toBe(0);
    expect(b.estimateMs(0)).toBe(100);
    b.start(0)(success(5), 1);
    // a still answers, and its late completion lands on a, not on b.
    expect(a.inFlight).toBe(1);
    expect(a.load(1)).toBeCloseTo(60, 9);
    pending(success(50), 2);
    expect(a.inFlight).toBe(0);
    expect(a.estimateMs(2)).toBeCloseTo(50, 9);
    expect(b.estimateMs(2)).toBeCloseTo(5, 9);
    expect(b.inFlight).toBe(0);
  });

  it('picks exactly as reading each tracker would, also after peers leave and slots are reused', () => {
    // staleSamples: 0 so that estimates keep the plain time decay this test reasons with.
    const balancer = p2c({ metric: peakEwma({ staleSamples: 0 }) });
    const peers = makePeers(40, balancer.metric!);
    const rng = seededRandom(5);
    for (const [i, peer] of peers.entries()) {
      for (let k = 0; k < i % 4; k++) peer.tracker.start(0);
      peer.tracker.start(0)(success(1 + ((i * 7) % 13)), i);
    }
    const fromTable = balancer.build(peers);
    const fromTrackers = twoChoices(peers, trackerLoads);
    // Half the peers leave; new ones take their slots with very different loads. The old
    // snapshots must still see the leavers' own state, never the newcomers'.
    for (const peer of peers.slice(0, 20)) peer.tracker.release?.();
    const newcomers = makePeers(20, balancer.metric!, 'n');
    for (const peer of newcomers) peer.tracker.start(0)(success(5_000), 50);
    const seeds = [seededRandom(11), seededRandom(11)];
    for (let n = 0; n < 2_000; n++) {
      const now = 50 + n;
      const x = fromTable.pick({ random: seeds[0]!, now });
      const y = fromTrackers.pick({ random: seeds[1]!, now });
      expect(x.kind === 'peer' && x.peer.id).toBe(y.kind === 'peer' && y.peer.id);
      if (rng() < 0.3) peers[Math.floor(rng() * 40)]!.tracker.start(now);
    }
    // And a snapshot over the newcomers and the stayers reads the newcomers' own state.
    const next = balancer.build([...peers.slice(20), ...newcomers]);
    const counts = new Map<string, number>();
    const random = seededRandom(3);
    for (let n = 0; n < 2_000; n++) {
      const r = next.pick({ random, now: 3_000 });
      if (r.kind === 'peer') counts.set(r.peer.id[0]!, (counts.get(r.peer.id[0]!) ?? 0) + 1);
    }
    // Newcomers cost 5 s each: P2C only takes one when both draws are newcomers (~24 %).
    expect(counts.get('n')! / 2_000).toBeLessThan(0.3);
  });
});
