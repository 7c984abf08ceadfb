import type { ServiceInstance } from '@peerlb/registry';
import { leastRequestsLoad } from '../src/balancer/load-metrics.js';
import type { LoadMetric, LoadTracker, PickablePeer, Picker, PickContext } from '../src/balancer/types.js';

export interface TestPeer extends PickablePeer {
  readonly tracker: LoadTracker;
}

export function makePeer(id: string, metric: LoadMetric = leastRequestsLoad(), port = 8080): TestPeer {
  const instance: ServiceInstance = { id, service: 'svc', address: '127.0.0.1', port, tags: [], meta: {} };
  return { id, instance, tracker: metric.create() };
}

export function makePeers(n: number, metric: LoadMetric = leastRequestsLoad(), prefix = 'p'): TestPeer[] {
  return Array.from({ length: n }, (_, i) => makePeer(`${prefix}${i}`, metric, 8000 + i));
}

/** Picks `times` and counts how often each peer id came out; unavailable results under `'-'`. */
export function countPicks<P extends PickablePeer>(
  picker: Picker<P>,
  times: number,
  ctx: () => PickContext,
): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < times; i++) {
    const r = picker.pick(ctx());
    const id = r.kind === 'peer' ? r.peer.id : '-';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

export interface SimulatedPeer {
  readonly peer: TestPeer;
  /** Fixed latency of this peer, ms. */
  readonly latencyMs: number;
  /** When true every request fails (e.g. connection refused) after `latencyMs`. */
  readonly failing?: boolean;
}

/**
 * A discrete-time simulation: one request every `intervalMs`, each completing after its peer's
 * latency (in-flight counts and load metrics see it all). Returns picks per peer id.
 */
export function simulate(
  picker: Picker<TestPeer>,
  peers: readonly SimulatedPeer[],
  options: { requests: number; intervalMs: number; random: () => number; startAt?: number },
): Map<string, number> {
  const byId = new Map(peers.map((p) => [p.peer.id, p]));
  const queues = new Map<string, { at: number; done: ReturnType<LoadTracker['start']> }[]>(
    peers.map((p) => [p.peer.id, []]),
  );
  const counts = new Map<string, number>(peers.map((p) => [p.peer.id, 0]));
  const start = options.startAt ?? 0;
  let now = start;
  const drain = (until: number) => {
    for (const [id, queue] of queues) {
      const sim = byId.get(id)!;
      while (queue.length > 0 && queue[0]!.at <= until) {
        const { at, done } = queue.shift()!;
        done(
          sim.failing === true
            ? { kind: 'failure', reason: 'connect', latencyMs: sim.latencyMs }
            : { kind: 'success', latencyMs: sim.latencyMs },
          at,
        );
      }
    }
  };
  for (let i = 0; i < options.requests; i++) {
    now = start + i * options.intervalMs;
    drain(now);
    const r = picker.pick({ random: options.random, now });
    if (r.kind !== 'peer') throw new Error(`unexpected ${r.reason}`);
    const sim = byId.get(r.peer.id)!;
    counts.set(r.peer.id, counts.get(r.peer.id)! + 1);
    queues.get(r.peer.id)!.push({ at: now + sim.latencyMs, done: r.peer.tracker.start(now) });
  }
  drain(Number.POSITIVE_INFINITY);
  return counts;
}
