import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import {
  leastRequests,
  leastRequestsLoad,
  p2c,
  peakEwma,
  random,
  roundRobin,
  seededRandom,
  type Balancer,
  type LoadMetric,
} from '../src/balancer/index.js';
import { countPicks, makePeers } from './balancer-support.js';

const N = 30_000;

function share(counts: Map<string, number>, id: string, total = N): number {
  return (counts.get(id) ?? 0) / total;
}

describe('seededRandom', () => {
  it('is reproducible and uniform in [0, 1)', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 10_000 }, () => a());
    expect(xs.slice(0, 5)).toEqual(Array.from({ length: 5 }, () => b()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.48);
    expect(mean).toBeLessThan(0.52);
    expect(seededRandom(43)()).not.toBe(seededRandom(42)());
  });
});

describe.each<[string, () => Balancer]>([
  ['p2c', () => p2c()],
  ['leastRequests', () => leastRequests()],
  ['roundRobin', () => roundRobin()],
  ['random', () => random()],
])('%s: common picker rules', (_name, make) => {
  it('answers no-peers for an empty snapshot, never throws', () => {
    const picker = make().build([]);
    expect(picker.size).toBe(0);
    expect(picker.pick({ random: seededRandom(1), now: 0 })).toEqual({ kind: 'unavailable', reason: 'no-peers' });
  });

  it('answers all-excluded when every peer was tried', () => {
    const peers = makePeers(3);
    const picker = make().build(peers);
    const exclude = new Set(peers.map((p) => p.id));
    expect(picker.pick({ random: seededRandom(1), now: 0, exclude })).toEqual({
      kind: 'unavailable',
      reason: 'all-excluded',
    });
  });

  it('never returns an excluded peer, and finds the only one left', () => {
    const peers = makePeers(10);
    const picker = make().build(peers);
    const rnd = seededRandom(7);
    const exclude = new Set(peers.slice(0, 9).map((p) => p.id));
    for (let i = 0; i < 200; i++) {
      const r = picker.pick({ random: rnd, now: 0, exclude });
      expect(r.kind === 'peer' && r.peer.id).toBe('p9');
    }
    const some = new Set(['p0', 'p3', 'p4']);
    const counts = countPicks(picker, 2000, () => ({ random: rnd, now: 0, exclude: some }));
    for (const id of some) expect(counts.get(id)).toBeUndefined();
    expect(counts.get('-')).toBeUndefined();
  });

  it('is a snapshot: changing the array it was built from changes nothing', () => {
    const peers = makePeers(2);
    const picker = make().build(peers);
    peers.push(...makePeers(3, undefined, 'x'));
    peers.length = 1;
    expect(picker.size).toBe(2);
    const counts = countPicks(picker, 200, () => ({ random: seededRandom(3), now: 0 }));
    expect([...counts.keys()].every((id) => id === 'p0' || id === 'p1')).toBe(true);
  });

  it('declares the load metric its peers should be tracked with', () => {
    expect(typeof make().metric?.create).toBe('function');
  });

  it('is reproducible for a given seed', () => {
    const peers = makePeers(5);
    const seq = (seed: number) => {
      const picker = make().build(peers);
      const rnd = seededRandom(seed);
      return Array.from({ length: 50 }, () => {
        const r = picker.pick({ random: rnd, now: 0 });
        return r.kind === 'peer' ? r.peer.id : '-';
      });
    };
    expect(seq(11)).toEqual(seq(11));
  });
});

describe('p2c', () => {
  it('spreads evenly over equally loaded peers', () => {
    const peers = makePeers(5);
    const rnd = seededRandom(5);
    const counts = countPicks(p2c({ metric: leastRequestsLoad() }).build(peers), N, () => ({ random: rnd, now: 0 }));
    for (const p of peers) {
      expect(share(counts, p.id)).toBeGreaterThan(0.18);
      expect(share(counts, p.id)).toBeLessThan(0.22);
    }
  });

  it('picks the less loaded of its two draws: the most loaded peer is never chosen', () => {
    const peers = makePeers(4);
    for (let i = 0; i < 5; i++) peers[2]!.tracker.start(0);
    peers[1]!.tracker.start(0);
    const rnd = seededRandom(6);
    const counts = countPicks(p2c({ metric: leastRequestsLoad() }).build(peers), N, () => ({ random: rnd, now: 0 }));
    expect(counts.get('p2')).toBeUndefined();
    // p0 and p3 (load 0) win every comparison they are in: each is in half of the pairs.
    expect(share(counts, 'p0')).toBeGreaterThan(0.38);
    expect(share(counts, 'p3')).toBeGreaterThan(0.38);
    // p1 wins only against p2: 1 pair in 6.
    expect(share(counts, 'p1')).toBeGreaterThan(0.14);
    expect(share(counts, 'p1')).toBeLessThan(0.19);
  });

  it('compares tracker.load(now), so a high latency estimate is avoided', () => {
    const metric = peakEwma({ decayMs: 1e9 });
    const peers = makePeers(3, metric);
    peers[0]!.tracker.start(0)({ kind: 'success', latencyMs: 500 }, 0);
    peers[1]!.tracker.start(0)({ kind: 'success', latencyMs: 5 }, 0);
    peers[2]!.tracker.start(0)({ kind: 'success', latencyMs: 5 }, 0);
    const rnd = seededRandom(8);
    const counts = countPicks(p2c({ metric }).build(peers), 3000, () => ({ random: rnd, now: 1 }));
    expect(counts.get('p0')).toBeUndefined();
  });

  it('with exclusions, still chooses uniformly among what is left (fallback path)', () => {
    const peers = makePeers(10);
    const rnd = seededRandom(9);
    const exclude = new Set(peers.slice(0, 7).map((p) => p.id));
    const counts = countPicks(p2c({ metric: leastRequestsLoad() }).build(peers), N, () => ({
      random: rnd,
      now: 0,
      exclude,
    }));
    for (const id of ['p7', 'p8', 'p9']) {
      expect(share(counts, id)).toBeGreaterThan(0.3);
      expect(share(counts, id)).toBeLessThan(0.37);
    }
  });

  it("reads loads through any metric's loadsOf fast path, and falls back to trackers when it declines", () => {
    // A metric whose trackers all say 0, but whose fast path says peer 0 is loaded: the fast path rules.
    const base = leastRequestsLoad();
    let snapshots = 0;
    let decline = false;
    const metric: LoadMetric = {
      name: 'custom',
      create: () => base.create(),
      loadsOf: (peers) => {
        snapshots++;
        if (decline) return undefined;
        expect(peers).toHaveLength(2);
        return (i) => (i === 0 ? 100 : 0);
      },
    };
    const peers = makePeers(2, metric);
    const rnd = seededRandom(10);
    const counts = countPicks(p2c({ metric }).build(peers), 1000, () => ({ random: rnd, now: 0 }));
    expect(counts.get('p0')).toBeUndefined();
    expect(snapshots).toBe(1);
    // Declined: the trackers (both idle) are read, and both peers are picked.
    decline = true;
    const fallback = countPicks(p2c({ metric }).build(peers), 1000, () => ({ random: rnd, now: 0 }));
    expect(fallback.get('p0')).toBeGreaterThan(300);
    expect(snapshots).toBe(2);
  });

  it('rejects a metric that is not one', () => {
    expect(() => p2c({ metric: {} as never })).toThrow(InvalidOptionsError);
    expect(() => p2c({ metric: {} as never })).toThrow(/p2c\.metric/);
  });
});

describe('leastRequests', () => {
  it('compares in-flight counts whatever the tracker', () => {
    const metric = peakEwma();
    const peers = makePeers(3, metric);
    // Low latency estimate but many in flight: least-requests must still avoid it.
    for (let i = 0; i < 10; i++) peers[0]!.tracker.start(0);
    const rnd = seededRandom(10);
    const counts = countPicks(leastRequests().build(peers), 3000, () => ({ random: rnd, now: 0 }));
    expect(counts.get('p0')).toBeUndefined();
    expect(share(counts, 'p1', 3000)).toBeGreaterThan(0.45);
  });
});

describe('roundRobin', () => {
  it('cycles through the peers in order, from a random start', () => {
    const peers = makePeers(4);
    const picker = roundRobin().build(peers);
    const rnd = seededRandom(12);
    const ids = Array.from({ length: 12 }, () => {
      const r = picker.pick({ random: rnd, now: 0 });
      return r.kind === 'peer' ? r.peer.id : '-';
    });
    const first = Number(ids[0]!.slice(1));
    expect(ids).toEqual(Array.from({ length: 12 }, (_, i) => `p${(first + i) % 4}`));
  });

  it('starts at different peers for different random sources', () => {
    const peers = makePeers(8);
    const starts = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const r = roundRobin().build(peers).pick({ random: seededRandom(seed), now: 0 });
      if (r.kind === 'peer') starts.add(r.peer.id);
    }
    expect(starts.size).toBeGreaterThan(4);
  });

  it('skips excluded peers and keeps the rotation', () => {
    const peers = makePeers(4);
    const picker = roundRobin().build(peers);
    const rnd = () => 0; // start at p0
    const exclude = new Set(['p1']);
    const ids = Array.from({ length: 6 }, () => {
      const r = picker.pick({ random: rnd, now: 0, exclude });
      return r.kind === 'peer' ? r.peer.id : '-';
    });
    expect(ids).toEqual(['p0', 'p2', 'p3', 'p0', 'p2', 'p3']);
  });

  it('gives exactly equal shares over whole cycles', () => {
    const peers = makePeers(5);
    const picker = roundRobin().build(peers);
    const counts = countPicks(picker, 5000, () => ({ random: Math.random, now: 0 }));
    for (const p of peers) expect(counts.get(p.id)).toBe(1000);
  });
});

describe('random', () => {
  it('is uniform', () => {
    const peers = makePeers(6);
    const rnd = seededRandom(13);
    const counts = countPicks(random().build(peers), N, () => ({ random: rnd, now: 0 }));
    for (const p of peers) {
      expect(share(counts, p.id)).toBeGreaterThan(0.15);
      expect(share(counts, p.id)).toBeLessThan(0.185);
    }
  });

  it('stays in range even if the random source returns 1', () => {
    const peers = makePeers(3);
    const r = random().build(peers).pick({ random: () => 1, now: 0 });
    expect(r.kind).toBe('peer');
  });
});
