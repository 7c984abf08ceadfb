import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@peerlb/registry';
import { consistentHash, hash32, seededRandom, type Picker } from '../src/balancer/index.js';
import { makePeer, makePeers, type TestPeer } from './balancer-support.js';

const KEYS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

function owner(picker: Picker<TestPeer>, key: string, exclude?: ReadonlySet<string>): string {
  const r = picker.pick({ random: seededRandom(1), now: 0, key, exclude });
  if (r.kind !== 'peer') throw new Error(r.reason);
  return r.peer.id;
}

function owners(picker: Picker<TestPeer>): string[] {
  return KEYS.map((k) => owner(picker, k));
}

describe('consistentHash', () => {
  it('sends a key to the same peer every time, whatever order the peers come in', () => {
    const peers = makePeers(7);
    const a = consistentHash().build(peers);
    const b = consistentHash().build([...peers].reverse());
    const keys = KEYS.slice(0, 2000);
    expect(keys.filter((key) => owner(a, key) !== owner(b, key))).toEqual([]);
    expect(keys.filter((key) => owner(a, key) !== owner(a, key))).toEqual([]);
  });

  it('spreads keys roughly evenly (100 points per peer)', () => {
    const peers = makePeers(10);
    const counts = new Map<string, number>();
    for (const id of owners(consistentHash().build(peers))) counts.set(id, (counts.get(id) ?? 0) + 1);
    expect(counts.size).toBe(10);
    for (const c of counts.values()) {
      expect(c / KEYS.length).toBeGreaterThan(0.06);
      expect(c / KEYS.length).toBeLessThan(0.14);
    }
  });

  it('moves about 1/N of the keys when a peer joins, all of them to the newcomer', () => {
    const peers = makePeers(10);
    const before = owners(consistentHash().build(peers));
    const after = owners(consistentHash().build([...peers, makePeer('joiner')]));
    const moved = KEYS.filter((_, i) => before[i] !== after[i]).length;
    const movedTo = new Set(KEYS.flatMap((_, i) => (before[i] !== after[i] ? [after[i]] : [])));
    expect([...movedTo]).toEqual(['joiner']);
    const fraction = moved / KEYS.length;
    // Ideal 1/11 = 0.091.
    expect(fraction).toBeGreaterThan(0.055);
    expect(fraction).toBeLessThan(0.13);
  });

  it('moves only the keys of a peer that leaves', () => {
    const peers = makePeers(10);
    const before = owners(consistentHash().build(peers));
    const after = owners(consistentHash().build(peers.filter((p) => p.id !== 'p4')));
    // A key moved if and only if it was p4's.
    const wrong = KEYS.filter((_, i) => (before[i] !== after[i]) !== (before[i] === 'p4'));
    expect(wrong).toEqual([]);
    const moved = KEYS.filter((_, i) => before[i] !== after[i]).length;
    expect(moved / KEYS.length).toBeGreaterThan(0.05);
    expect(moved / KEYS.length).toBeLessThan(0.15);
  });

  it('falls back to the next peer on the ring when the owner is excluded: the same peer as without the owner', () => {
    const peers = makePeers(6);
    const full = consistentHash().build(peers);
    const without = new Map(peers.map((p) => [p.id, consistentHash().build(peers.filter((q) => q.id !== p.id))]));
    const mismatches = KEYS.slice(0, 2000).filter((key) => {
      const first = owner(full, key);
      const next = owner(full, key, new Set([first]));
      return next === first || next !== owner(without.get(first)!, key);
    });
    expect(mismatches).toEqual([]);
  });

  it('answers all-excluded and no-peers without throwing', () => {
    const peers = makePeers(3);
    const picker = consistentHash().build(peers);
    expect(picker.pick({ random: Math.random, now: 0, key: 'k', exclude: new Set(['p0', 'p1', 'p2']) })).toEqual({
      kind: 'unavailable',
      reason: 'all-excluded',
    });
    expect(consistentHash().build([]).pick({ random: Math.random, now: 0, key: 'k' })).toEqual({
      kind: 'unavailable',
      reason: 'no-peers',
    });
  });

  it('without a key, picks uniformly at random', () => {
    const peers = makePeers(4);
    const picker = consistentHash().build(peers);
    const rnd = seededRandom(2);
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const r = picker.pick({ random: rnd, now: 0 });
      if (r.kind === 'peer') counts.set(r.peer.id, (counts.get(r.peer.id) ?? 0) + 1);
    }
    for (const p of peers) {
      expect(counts.get(p.id)! / 20_000).toBeGreaterThan(0.22);
      expect(counts.get(p.id)! / 20_000).toBeLessThan(0.28);
    }
  });

  it('takes the key from a custom function of the context', () => {
    const peers = makePeers(5);
    const picker = consistentHash({ key: (ctx) => (ctx.key === undefined ? undefined : ctx.key.split(':')[0]) }).build(
      peers,
    );
    expect(owner(picker, 'tenant-a:1')).toBe(owner(picker, 'tenant-a:2'));
  });

  it('with bounded load, moves a key off an owner above c x average in-flight', () => {
    const peers = makePeers(4);
    const picker = consistentHash({ boundedLoad: 1.25 }).build(peers);
    const key = 'sticky';
    const home = owner(picker, key);
    const homePeer = peers.find((p) => p.id === home)!;
    // 8 in flight on the owner, 0 elsewhere: cap = ceil(1.25 * 9 / 4) = 3.
    for (let i = 0; i < 8; i++) homePeer.tracker.start(0);
    const elsewhere = owner(picker, key);
    expect(elsewhere).not.toBe(home);
    // Stable while loads stay: the same next peer on the ring.
    expect(owner(picker, key)).toBe(elsewhere);
    // Back under the bound: home again.
    const done = homePeer.tracker.start(0);
    for (let i = 0; i < 9; i++) done({ kind: 'success', latencyMs: 1 }, 1);
    expect(owner(picker, key)).toBe(home);
  });

  it('validates its options', () => {
    expect(() => consistentHash({ replicas: 0 })).toThrow(InvalidOptionsError);
    expect(() => consistentHash({ replicas: 1.5 })).toThrow(/consistentHash\.replicas/);
    expect(() => consistentHash({ boundedLoad: 0.9 })).toThrow(/consistentHash\.boundedLoad/);
    expect(() => consistentHash({ key: 'user' as never })).toThrow(/consistentHash\.key/);
  });

  it('hash32 is stable and spreads similar strings', () => {
    expect(hash32('abc')).toBe(hash32('abc'));
    const buckets = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) buckets[hash32(`p#${i}`) >>> 28]!++;
    for (const b of buckets) {
      expect(b).toBeGreaterThan(800);
      expect(b).toBeLessThan(1200);
    }
  });
});
