import { randomIndex } from './random.js';
import type { PickablePeer } from './types.js';

/** Random draws tried before counting the peers that are left: keeps the common case O(1). */
const REJECTION_TRIES = 4;

/**
 * The index of a peer drawn uniformly among those not excluded and not at index `skip`,
 * or -1 when there is none. Rejection sampling is uniform conditional on acceptance, and the
 * fallback (count, then draw a rank) is uniform too, so the whole is uniform whatever happens.
 * O(1) expected while few peers are excluded; O(n) without allocation otherwise.
 */
export function sampleIndex(
  peers: readonly PickablePeer[],
  exclude: ReadonlySet<string> | undefined,
  random: () => number,
  skip = -1,
): number {
  const n = peers.length;
  const candidates = skip >= 0 && skip < n ? n - 1 : n;
  if (candidates <= 0) return -1;
  if (exclude === undefined || exclude.size === 0) {
    if (candidates === n) return randomIndex(random, n);
    const i = randomIndex(random, n - 1);
    return i >= skip ? i + 1 : i;
  }
  for (let t = 0; t < REJECTION_TRIES; t++) {
    const i = randomIndex(random, n);
    if (i !== skip && !exclude.has(peers[i]!.id)) return i;
  }
  let left = 0;
  for (let i = 0; i < n; i++) if (i !== skip && !exclude.has(peers[i]!.id)) left++;
  if (left === 0) return -1;
  let rank = randomIndex(random, left);
  for (let i = 0; i < n; i++) {
    if (i === skip || exclude.has(peers[i]!.id)) continue;
    if (rank === 0) return i;
    rank--;
  }
  return -1;
}
