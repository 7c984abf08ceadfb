import { leastRequestsLoad } from './load-metrics.js';
import { functionOption, numberOption, optionsObject } from '@peerlb/registry';
import { ALL_EXCLUDED, NO_PEERS, peerResults, snapshotOf } from './pick-results.js';
import { sampleIndex } from './sample.js';
import type { Balancer, PickablePeer, PickContext, Picker, PickResult } from './types.js';

export interface ConsistentHashOptions {
  /** The affinity key of a pick. Default: `ctx.key`. No key (undefined): a uniform random peer. */
  key?: (ctx: PickContext) => string | undefined;
  /** Points on the ring per peer. More points, smoother shares, bigger ring. Default 100. */
  replicas?: number;
  /**
   * Consistent hashing with bounded loads (Mirrokni et al., 2016): a peer takes a key only while
   * its in-flight count is below ceil(c × (total in flight + 1) / peers); otherwise the key walks
   * on along the ring. `c` >= 1, e.g. 1.25. Off by default. Costs an O(peers) sum per pick.
   */
  boundedLoad?: number;
}

/**
 * Sticky routing by key on a hash ring (Ketama style: `replicas` points per peer, placed by
 * hashing the peer id, so a peer's points do not depend on who else is in the set).
 *
 * Why a ring and not Maglev or jump hash: jump hash only supports adding or removing the LAST
 * bucket, but peers leave from anywhere; Maglev gives O(1) lookups but moves somewhat more than
 * the minimum on membership change and has no natural "next peer" order. The ring moves only
 * the keys of the peer that joined or left (~1/N), its clockwise walk is the fallback when the
 * owner is excluded (already tried) or over its bounded load, and its O(log(N × replicas))
 * lookup is cheap next to a request. P2C stays the O(1) default for non-sticky traffic.
 */
export function consistentHash(options?: ConsistentHashOptions): Balancer {
  const field = 'consistentHash';
  const o = optionsObject(field, options);
  const keyOf = functionOption<(ctx: PickContext) => string | undefined>(`${field}.key`, o.key, defaultKey);
  const replicas = numberOption(`${field}.replicas`, o.replicas, 100, { min: 1, max: 10_000, integer: true });
  const boundedLoad =
    o.boundedLoad === undefined ? undefined : numberOption(`${field}.boundedLoad`, o.boundedLoad, 1, { min: 1 });
  return {
    name: 'consistent-hash',
    metric: leastRequestsLoad(),
    build: (peers) => ringPicker(peers, keyOf, replicas, boundedLoad),
  };
}

function defaultKey(ctx: PickContext): string | undefined {
  return ctx.key;
}

function ringPicker<P extends PickablePeer>(
  input: readonly P[],
  keyOf: (ctx: PickContext) => string | undefined,
  replicas: number,
  boundedLoad: number | undefined,
): Picker<P> {
  const peers = snapshotOf(input);
  const results = peerResults(peers);
  const n = peers.length;
  const { points, owners } = buildRing(peers, replicas);
  const total = points.length;
  return {
    size: n,
    pick(ctx: PickContext): PickResult<P> {
      if (n === 0) return NO_PEERS;
      const key = keyOf(ctx);
      if (typeof key !== 'string') {
        const i = sampleIndex(peers, ctx.exclude, ctx.random);
        return i < 0 ? ALL_EXCLUDED : results[i]!;
      }
      let cap = Number.POSITIVE_INFINITY;
      if (boundedLoad !== undefined) {
        let inFlight = 0;
        for (let p = 0; p < n; p++) inFlight += peers[p]!.tracker.inFlight;
        cap = Math.ceil((boundedLoad * (inFlight + 1)) / n);
      }
      const exclude = ctx.exclude;
      let overloaded = -1;
      let at = lowerBound(points, hash32(key));
      for (let step = 0; step < total; step++) {
        if (at === total) at = 0;
        const p = owners[at++]!;
        const peer = peers[p]!;
        if (exclude !== undefined && exclude.has(peer.id)) continue;
        if (peer.tracker.inFlight < cap) return results[p]!;
        if (overloaded < 0) overloaded = p;
      }
      // Every eligible peer is at its bound (only when most are excluded): take the first in ring order.
      return overloaded < 0 ? ALL_EXCLUDED : results[overloaded]!;
    },
  };
}

interface Ring {
  /** Sorted point hashes. */
  readonly points: Uint32Array;
  /** `owners[i]` is the index (in the snapshot) of the peer owning `points[i]`. */
  readonly owners: Uint32Array;
}

function buildRing(peers: readonly PickablePeer[], replicas: number): Ring {
  const total = peers.length * replicas;
  const hashes = new Uint32Array(total);
  for (let p = 0; p < peers.length; p++) {
    const id = peers[p]!.id;
    for (let r = 0; r < replicas; r++) hashes[p * replicas + r] = hash32(`${id}#${r}`);
  }
  const order = new Uint32Array(total);
  for (let i = 0; i < total; i++) order[i] = i;
  // Ties broken by peer id: the ring must not depend on the order peers were listed in.
  order.sort((x, y) => {
    const dh = hashes[x]! - hashes[y]!;
    if (dh !== 0) return dh;
    const a = peers[Math.floor(x / replicas)]!.id;
    const b = peers[Math.floor(y / replicas)]!.id;
    return a < b ? -1 : a > b ? 1 : x - y;
  });
  const points = new Uint32Array(total);
  const owners = new Uint32Array(total);
  for (let i = 0; i < total; i++) {
    const j = order[i]!;
    points[i] = hashes[j]!;
    owners[i] = Math.floor(j / replicas);
  }
  return { points, owners };
}

/** First index whose point is >= h (points.length when none: the walk wraps to 0). */
function lowerBound(points: Uint32Array, h: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * 32-bit FNV-1a over UTF-16 code units, finished with murmur3's fmix32: FNV alone leaves similar
 * strings ("a#1", "a#2") close together, which would clump a peer's points on the ring.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
