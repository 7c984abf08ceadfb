// Issue 17: what the browser view shows is computed from the supervisor's snapshots by WebModel.
// These tests feed it snapshots as the supervisor takes them and check the picture a user reads:
// states, rates and shares, the minute of share history, and the timeline of what changed.
import type { ClientStats, PeerStats } from '@peerlb/client';
import { describe, expect, it } from 'vitest';
import type { InstanceProcess } from '../examples/mesh/src/instance-process.js';
import type { MeshSnapshot } from '../examples/mesh/src/observe.js';
import type { InstanceStats, ServiceName } from '../examples/mesh/src/protocol.js';
import { WebModel } from '../examples/mesh/src/web/web-model.js';

interface FakeProc {
  label: string;
  service: ServiceName;
  alive: boolean;
  pid: number;
  info: { id: string; port: number; url: string; pid: number; registeredAt: number } | undefined;
  exit: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
}

function proc(label: string, id: string): FakeProc {
  const service = label.split('#')[0] as ServiceName;
  return { label, service, alive: true, pid: 100, info: { id, port: 7000, url: 'http://127.0.0.1:7000', pid: 100, registeredAt: 0 }, exit: undefined };
}

function peer(id: string, over: Partial<PeerStats> = {}): PeerStats {
  return {
    id, address: '127.0.0.1', port: 7000, inFlight: 0, load: 1, breaker: 'closed', ejected: false, ejectedForMs: undefined,
    avoidedForMs: undefined, eligible: true, excluded: [], requests: 0, failures: 0, poolOpen: true, ...over,
  };
}

function client(services: Record<string, { requests: number; peers: PeerStats[] }>): ClientStats {
  return {
    closed: false,
    services: Object.fromEntries(
      Object.entries(services).map(([service, s]) => [
        service,
        {
          service, discovered: true, stale: false, expired: false, staleSince: undefined, lastError: undefined, updatedAt: 0,
          emptyPending: false, panic: false, eligiblePeers: s.peers.length, requests: s.requests, failures: 0, retries: 0, ejections: 0, registryErrors: 0, hedges: { sent: 0, won: 0, cancelled: 0 }, peers: s.peers,
        },
      ]),
    ),
  };
}

function stats(p: FakeProc, served: number, over: Partial<InstanceStats> = {}): InstanceStats {
  return {
    id: p.info!.id, label: p.label, service: p.service, pid: p.pid, url: p.info!.url, state: 'registered', healthy: true,
    startedAt: 0, registeredAt: 0, firstRequestAt: null, served, failed: 0, inFlight: 0, slowMs: 0, callers: {},
    client: client({}), ...over,
  };
}

function snapshot(at: number, views: Array<[FakeProc, InstanceStats | undefined]>, listed: Record<string, string[]>): MeshSnapshot {
  return {
    at,
    instances: views.map(([p, s]) => ({ proc: p as unknown as InstanceProcess, stats: s, error: s ? undefined : 'exited' })),
    registry: new Map(Object.entries(listed).map(([k, ids]) => [k as ServiceName, new Set(ids)])),
    registryError: undefined,
  };
}

const model = () =>
  new WebModel({ registryName: 'local (/tmp/x)', gatewayUrl: 'http://127.0.0.1:8080', startedAt: 0, services: ['gateway', 'catalog'] });

describe('browser view model (issue 17)', () => {
  it('rates and shares per instance, edges from the callers, and each state in its words', () => {
    const m = model();
    const gw = proc('gateway', 'gateway-1');
    const c1 = proc('catalog#1', 'catalog-1');
    const c2 = proc('catalog#2', 'catalog-2');
    const gwStats = (n: number) => stats(gw, n, { client: client({ catalog: { requests: n, peers: [peer('catalog-1'), peer('catalog-2')] } }) });
    const listed = { gateway: ['gateway-1'], catalog: ['catalog-1', 'catalog-2'] };
    m.update(snapshot(0, [[gw, gwStats(0)], [c1, stats(c1, 0)], [c2, stats(c2, 0)]], listed));
    const f = m.update(snapshot(2_000, [[gw, gwStats(40)], [c1, stats(c1, 30)], [c2, stats(c2, 10)]], listed));

    const byLabel = new Map(f.instances.map((i) => [i.label, i]));
    expect(byLabel.get('catalog#1')).toMatchObject({ state: 'registered', rps: 15, share: 0.75, listed: true });
    expect(byLabel.get('catalog#2')).toMatchObject({ rps: 5, share: 0.25 });
    expect(byLabel.get('catalog#1')!.history).toEqual([0, 0.75]);
    expect(f.services).toEqual([{ name: 'gateway', rps: 20 }, { name: 'catalog', rps: 20 }]);
    expect(f.edges.find((e) => e.from === 'gateway' && e.to === 'catalog')?.rps).toBe(20);
    expect(f.callers).toHaveLength(1);
    expect(f.callers[0]!.peers.map((p) => [p.label, p.state])).toEqual([['catalog#1', 'ok'], ['catalog#2', 'ok']]);

    // A killed one is gone (no rate, a gap in its chart); a draining and an unhealthy one say so.
    c1.alive = false;
    c1.exit = { code: null, signal: 'SIGKILL', at: 3_000 };
    const g = m.update(
      snapshot(3_000, [[gw, gwStats(60)], [c1, undefined], [c2, stats(c2, 30, { state: 'draining' })]], { gateway: ['gateway-1'], catalog: [] }),
    );
    const after = new Map(g.instances.map((i) => [i.label, i]));
    expect(after.get('catalog#1')).toMatchObject({ state: 'gone', detail: 'killed by SIGKILL', rps: 0, listed: false });
    expect(after.get('catalog#1')!.history.at(-1)).toBeNull();
    expect(after.get('catalog#2')!.state).toBe('draining');
    const h = m.update(snapshot(4_000, [[gw, gwStats(60)], [c2, stats(c2, 30, { healthy: false })]], listed));
    expect(h.instances.find((i) => i.label === 'catalog#2')!.state).toBe('unhealthy');
  });

  it('the timeline tells what changed: registry, state, health, ejections and breakers', () => {
    const m = model();
    const gw = proc('gateway', 'gateway-1');
    const c1 = proc('catalog#1', 'catalog-1');
    const view = (p1: Partial<PeerStats>, state = 'registered', healthy = true): Array<[FakeProc, InstanceStats]> => [
      [gw, stats(gw, 0, { client: client({ catalog: { requests: 0, peers: [peer('catalog-1', p1)] } }) })],
      [c1, stats(c1, 0, { state, healthy })],
    ];
    m.note('catalog#1: started pid=100', 0);
    m.update(snapshot(0, view({}), { catalog: ['catalog-1'] }));
    m.update(snapshot(1_000, view({ ejected: true, breaker: 'open' }, 'unhealthy', false), { catalog: [] }));
    const f = m.update(snapshot(2_000, view({}, 'draining'), { catalog: [] }));
    expect(f.events.map((e) => e.text)).toEqual([
      'catalog#1: started pid=100',
      'gateway ejected catalog#1',
      'gateway: breaker of catalog#1 opened',
      'catalog#1: registered → unhealthy',
      'catalog#1: health failing',
      'registry: catalog#1 left catalog',
      'catalog#1: unhealthy → draining',
      'catalog#1: health passing again',
    ]);
  });

  it('shows an event-loop load only when the stats carry one', () => {
    const m = model();
    const c1 = proc('catalog#1', 'catalog-1');
    const plain = m.update(snapshot(0, [[c1, stats(c1, 0)]], {}));
    expect(plain.instances[0]!.reportedLoad).toBeNull();
    const withLoad = m.update(snapshot(1_000, [[c1, { ...stats(c1, 0), eventLoopUtilization: 0.42 } as InstanceStats]], {}));
    expect(withLoad.instances[0]!.reportedLoad).toBe(0.42);
  });
});
