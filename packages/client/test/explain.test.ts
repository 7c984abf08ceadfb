// Issue 16: client.explain(service) answers "why this peer?": every peer with its load and the
// reasons it is excluded (the names stats() and the metrics use), and dry-run picks on the live
// state that show the candidates compared and where traffic would go now.
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, LOAD_REPORT_HEADER, roundRobin, seededRandom, type Client, type ClientOptions } from '../src/index.js';
import { startPeer, TestRegistry, waitFor, type Handler, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const ok: Handler = (_req, res) => res.end('ok');
const fail500: Handler = (_req, res) => {
  res.statusCode = 500;
  res.end('boom');
};

async function setUp(services: Record<string, Handler[]>, options: Partial<ClientOptions> = {}) {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  const peers: Record<string, TestPeer> = {};
  for (const [service, handlers] of Object.entries(services)) {
    for (const [i, handler] of handlers.entries()) {
      const peer = await startPeer(`${service}-${i}`, handler);
      cleanups.push(() => peer.close());
      await registry.add(service, peer);
      peers[peer.id] = peer;
    }
  }
  const client: Client = createClient({ registry, random: seededRandom(7), ...options });
  cleanups.push(() => client.close());
  return { client, peers };
}

async function send(client: Client, service: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await client.request({ service, path: '/' });
    await res.body.dump();
  }
}

describe('client.explain()', () => {
  it('P2C: compares two candidates and picks the lower load; shares follow the loads', async () => {
    const slow: Handler = (_req, res) => setTimeout(() => res.end('slow'), 300);
    const { client } = await setUp({ api: [ok, ok, slow] });
    await send(client, 'api', 30);

    const why = client.explain('api', { samples: 2000 });
    expect(why).toMatchObject({ service: 'api', balancer: 'p2c', metric: 'peak-ewma', discovered: true, panic: false });
    expect(why.healthy).toBe(3);
    expect(why.total).toBe(3);
    expect(why.pick.compared).toHaveLength(2);
    const [a, b] = why.pick.compared;
    expect(why.pick.chosen).toBe(a!.load <= b!.load ? a!.id : b!.id);
    for (const peer of why.peers) {
      expect(peer.inPicker).toBe(true);
      expect(peer.excluded).toEqual([]);
      expect(peer.latencyMs).toBeGreaterThan(0);
    }
    // The last real picks, newest first: 30 calls, no retry.
    expect(why.recentPicks).toHaveLength(30);
    expect(why.recentPicks.every((p) => p.attempt === 1 && /^api-[012]$/.test(p.peer))).toBe(true);
    const ages = why.recentPicks.map((p) => p.agoMs);
    expect(ages).toEqual([...ages].sort((x, y) => x - y));
    const share = Object.fromEntries(why.peers.map((p) => [p.id, p.share]));
    expect(share['api-0']! + share['api-1']! + share['api-2']!).toBeCloseTo(1, 5);
    // The slow peer loses the comparisons it is drawn into (a hiccup of a fast peer on a loaded
    // machine may cost it one now and then).
    expect(share['api-2']).toBeLessThan(0.05);
    expect(why.peers.find((p) => p.id === 'api-2')!.latencyMs).toBeGreaterThan(why.peers.find((p) => p.id === 'api-0')!.latencyMs!);
  });

  it('P2C: reports the cost it compares, own load x the server-reported utilization factor', async () => {
    const reporting = (utilization: number): Handler => (_req, res) => {
      res.setHeader(LOAD_REPORT_HEADER, `TEXT application_utilization=${utilization}`);
      res.end('ok');
    };
    // Reports stay fresh however slow the machine is.
    const { client } = await setUp({ api: [reporting(0.9), reporting(0.1)] }, { loadReports: { maxAgeMs: 600_000 } });
    const reported = () => client.stats().services['api']?.peers.every((p) => p.loadReport !== undefined) ?? false;
    for (let i = 0; i < 200 && !reported(); i++) await send(client, 'api', 1);
    expect(reported()).toBe(true);

    const why = client.explain('api', { samples: 10 });
    const hot = why.peers.find((p) => p.id === 'api-0')!;
    const cold = why.peers.find((p) => p.id === 'api-1')!;
    expect(hot.serverUtilization).toBeCloseTo(0.9, 5);
    expect(cold.serverUtilization).toBeCloseTo(0.1, 5);
    // The typical utilization lies between the two: the busy peer costs more than its own-view
    // load, the idle one less. That adjusted cost is what P2C compares.
    expect(hot.trackerLoad).toBeGreaterThan(0);
    expect(cold.trackerLoad).toBeGreaterThan(0);
    expect(hot.load / hot.trackerLoad).toBeGreaterThan(1);
    expect(cold.load / cold.trackerLoad).toBeLessThan(1);
    expect(why.pick.compared).toHaveLength(2);
    for (const candidate of why.pick.compared) {
      expect(candidate.load).toBeCloseTo(why.peers.find((p) => p.id === candidate.id)!.load, 9);
    }
  });

  it('without load reports the compared cost is the own-view load', async () => {
    const reporting: Handler = (_req, res) => {
      res.setHeader(LOAD_REPORT_HEADER, 'TEXT application_utilization=0.9');
      res.end('ok');
    };
    const { client } = await setUp({ api: [reporting, ok] }, { loadReports: false });
    await send(client, 'api', 20);
    const why = client.explain('api', { samples: 10 });
    for (const peer of why.peers) {
      expect(peer.serverUtilization).toBeUndefined();
      expect(peer.load).toBeCloseTo(peer.trackerLoad, 9);
    }
  });

  it('names why peers are excluded (Retry-After, ejected, max concurrency), as stats() does', async () => {
    const retryAfter: Handler = (_req, res: ServerResponse) => {
      res.statusCode = 503;
      res.setHeader('retry-after', '60');
      res.end('later');
    };
    let release: (() => void) | undefined;
    const hang: Handler = (_req, res) => {
      release = () => res.end('finally');
    };
    const { client, peers } = await setUp(
      { paused: [retryAfter, ok], flaky: [fail500, ok], busy: [hang] },
      {
        balancer: roundRobin(),
        breaker: false,
        healthyPanicThreshold: 0,
        maxConcurrentPerPeer: 1,
        // Two in a row: the Retry-After peer, avoided after its one 503, is not ejected too.
        outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionPercent: 100 },
      },
    );
    await send(client, 'paused', 4);
    await send(client, 'flaky', 6);
    expect(peers['paused-0']!.requests).toBeGreaterThan(0);
    expect(peers['flaky-0']!.requests).toBeGreaterThan(0);
    const pending = client.request({ service: 'busy', path: '/', timeoutMs: 20_000 });
    pending.catch(() => {}); // awaited below; this only keeps a failed test from leaving it unhandled
    await waitFor(() => peers['busy-0']!.requests === 1, 5000, 'the hanging request to arrive');

    const paused = client.explain('paused');
    expect(paused.peers.map((p) => [p.id, p.excluded, p.inPicker])).toEqual([
      ['paused-0', ['retry_after'], false],
      ['paused-1', [], true],
    ]);
    expect(paused.peers[0]!.retryAfterMs).toBeGreaterThan(20_000); // 60 s asked, capped by retry.maxRetryAfterMs (30 s)
    expect(paused.pick.chosen).toBe('paused-1');
    expect(paused.peers.map((p) => p.share)).toEqual([0, 1]);
    // The 503 from paused-0 was retried on paused-1: both attempts are in the recent picks.
    const picks = paused.recentPicks;
    const retry = picks.findIndex((p) => p.attempt === 2);
    expect(picks[retry]).toMatchObject({ peer: 'paused-1', attempt: 2 });
    expect(picks[retry + 1]).toMatchObject({ peer: 'paused-0', attempt: 1 });

    const flaky = client.explain('flaky');
    expect(flaky.peers.map((p) => [p.id, p.excluded])).toEqual([
      ['flaky-0', ['ejected']],
      ['flaky-1', []],
    ]);
    expect(flaky.peers[0]!.ejectedForMs).toBeGreaterThan(50_000);
    expect(flaky.healthy).toBe(1);

    const busy = client.explain('busy');
    expect(busy.peers.map((p) => [p.id, p.excluded, p.inFlight])).toEqual([['busy-0', ['max_concurrency'], 1]]);
    expect(busy.pick).toEqual({ chosen: undefined, compared: [], unavailable: 'all-excluded' });

    // The live view uses the same names.
    const stats = client.stats().services;
    expect(stats.paused!.peers.map((p) => p.excluded)).toEqual([['retry_after'], []]);
    expect(stats.flaky!.peers.map((p) => p.excluded)).toEqual([['ejected'], []]);
    expect(stats.busy!.peers.map((p) => p.excluded)).toEqual([['max_concurrency']]);

    release!();
    await (await pending).body.dump();
    expect(client.explain('busy').peers[0]!.excluded).toEqual([]);
  });

  it('open breaker, and panic mode putting excluded peers back in the picker', async () => {
    const { client } = await setUp(
      { down: [fail500, fail500] },
      {
        balancer: roundRobin(),
        retry: false,
        outlier: { consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionPercent: 100 },
        breaker: { volumeThreshold: 1, errorThresholdPercentage: 1, resetTimeoutMs: 60_000 },
      },
    );
    await send(client, 'down', 2);
    const why = client.explain('down');
    expect(why.panic).toBe(true);
    expect(why.healthy).toBe(0);
    for (const peer of why.peers) {
      expect(peer.excluded).toEqual(['breaker_open', 'ejected']);
      expect(peer.breaker).toBe('open');
      // Panic mode: back in the picker, yet a call's pick still skips an open breaker.
      expect(peer.inPicker).toBe(true);
      expect(peer.share).toBe(0);
    }
    expect(why.pick.chosen).toBeUndefined();
  });

  it('validates its options and leaves the live picker alone', async () => {
    const { client } = await setUp({ api: [ok, ok] }, { balancer: roundRobin() });
    await send(client, 'api', 1);
    expect(() => client.explain('api', { samples: -1 })).toThrow(expect.objectContaining({ field: 'samples' }));
    expect(() => client.explain('bad name!')).toThrow(expect.objectContaining({ code: 'PEERLB_INVALID_OPTIONS' }));
    // Dry-run picks use their own snapshot: round robin keeps alternating for real calls.
    const before = client.stats().services.api!.peers.map((p) => p.requests);
    client.explain('api', { samples: 1001 });
    await send(client, 'api', 4);
    const after = client.stats().services.api!.peers.map((p, i) => p.requests - before[i]!);
    expect(after).toEqual([2, 2]);
  });
});
