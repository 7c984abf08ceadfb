import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createClient,
  roundRobin,
  seededRandom,
  type BreakerEvent,
  type Client,
  type ClientOptions,
  type PanicEvent,
  type PeerEjectedEvent,
  type PeerEvent,
} from '../src/index.js';
import { startPeer, TestRegistry, waitFor, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function cluster(n: number, options: Partial<ClientOptions>) {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  const peers: TestPeer[] = [];
  for (let i = 0; i < n; i++) {
    const peer = await startPeer(`api-${i}`);
    cleanups.push(() => peer.close());
    await registry.add('api', peer);
    peers.push(peer);
  }
  // Round robin: every peer keeps getting traffic, so the detectors see it.
  const client: Client = createClient({ registry, random: seededRandom(3), balancer: roundRobin(), ...options });
  cleanups.push(() => client.close());
  return { peers, client };
}

const fail500 = (_req: unknown, res: ServerResponse) => {
  res.statusCode = 500;
  res.end('boom');
};
const ok = (_req: unknown, res: ServerResponse) => res.end('ok');

async function send(client: Client, n: number): Promise<number[]> {
  const codes: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await client.request({ service: 'api', path: '/' });
    await res.body.dump();
    codes.push(res.statusCode);
  }
  return codes;
}

describe('circuit breaker per peer', () => {
  it('opens on failures, takes the peer out, and closes again through half-open', async () => {
    const { peers, client } = await cluster(2, {
      outlier: false,
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 1000 },
    });
    const transitions: string[] = [];
    client.on('breaker', (e: BreakerEvent) => transitions.push(`${e.peer.id}:${e.state}`));
    const stateOf = (id: string) => client.stats().services.api!.peers.find((p) => p.id === id)!;
    peers[0]!.setHandler(fail500);
    // GETs that hit the broken peer are retried on the healthy one: callers see 200s.
    const codes = await send(client, 12);
    expect(codes.every((c) => c === 200)).toBe(true);
    expect(transitions).toEqual(['api-0:open']);

    // While open, the peer is out of the picker and gets nothing.
    const before = peers[0]!.requests;
    let sentWhileOpen = 0;
    while (sentWhileOpen < 10 && stateOf('api-0').breaker === 'open') {
      expect(stateOf('api-0').eligible).toBe(false);
      await send(client, 1);
      sentWhileOpen++;
    }
    expect(sentWhileOpen).toBeGreaterThan(0);
    expect(peers[0]!.requests).toBe(before);

    // The peer heals; after resetTimeoutMs one trial goes through and closes the breaker.
    peers[0]!.setHandler(ok);
    await waitFor(() => transitions.includes('api-0:halfOpen'), 3000, 'half-open');
    await waitFor(async () => {
      await send(client, 2);
      return transitions.includes('api-0:closed');
    }, 3000, 'closed');
    expect(transitions).toEqual(['api-0:open', 'api-0:halfOpen', 'api-0:closed']);
    const after = peers[0]!.requests;
    await send(client, 6);
    expect(peers[0]!.requests).toBeGreaterThan(after);
  });

  it('re-opens when the half-open trial fails', async () => {
    const { peers, client } = await cluster(2, {
      outlier: false,
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 200 },
    });
    const transitions: string[] = [];
    client.on('breaker', (e) => transitions.push(`${e.peer.id}:${e.state}`));
    peers[0]!.setHandler(fail500);
    await send(client, 6);
    await waitFor(() => transitions.includes('api-0:halfOpen'), 3000, 'half-open');
    await waitFor(async () => {
      await send(client, 2);
      return transitions.length >= 3;
    }, 3000, 'trial');
    expect(transitions.slice(0, 3)).toEqual(['api-0:open', 'api-0:halfOpen', 'api-0:open']);
  });

  it("fails at once with reason 'all-refused' when every peer's breaker is open, sending nothing", async () => {
    const { peers, client } = await cluster(2, {
      outlier: false,
      retry: false,
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 },
    });
    for (const peer of peers) peer.setHandler(fail500);
    await waitFor(async () => {
      await send(client, 2);
      const stats = client.stats().services.api!.peers;
      return stats.every((p) => p.breaker === 'open');
    }, 3000, 'both breakers open');
    const before = peers.map((p) => p.requests);
    const err = await client.request({ service: 'api', path: '/' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PEERLB_NO_PEERS', reason: 'all-refused', service: 'api' });
    expect(peers.map((p) => p.requests)).toEqual(before);
  });
});

describe('outlier ejection', () => {
  it('ejects consecutive failers up to maxEjectionPercent, then restores them', async () => {
    const { peers, client } = await cluster(4, {
      breaker: false,
      healthyPanicThreshold: 0,
      outlier: { consecutiveFailures: 2, baseEjectionMs: 2000, maxEjectionPercent: 50 },
    });
    let out = 0;
    let maxOut = 0;
    const ejected: PeerEjectedEvent[] = [];
    const restored: PeerEvent[] = [];
    client.on('peer:ejected', (e) => {
      ejected.push(e);
      maxOut = Math.max(maxOut, ++out);
    });
    client.on('peer:restored', (e) => {
      restored.push(e);
      out--;
    });
    for (const p of peers.slice(0, 3)) p.setHandler(fail500);
    await send(client, 24);
    // Three peers fail, but at most half of four may be out at once.
    expect(maxOut).toBe(2);
    expect(ejected[0]!.durationMs).toBe(2000);
    await waitFor(() => client.stats().services.api!.peers.filter((p) => p.ejected).length === 2, 3000, 'two out');
    const stats = client.stats().services.api!;
    expect(stats.eligiblePeers).toBe(2);
    expect(stats.panic).toBe(false);
    // The cap kept one failing peer in rotation, beside the healthy one.
    const eligible = stats.peers.filter((p) => p.eligible).map((p) => p.id);
    expect(eligible).toContain('api-3');
    expect(eligible.filter((id) => id !== 'api-3')).toHaveLength(1);
    await waitFor(() => restored.length >= 1, 3000, 'restoration');
    expect(ejected.map((e) => e.peer.id)).toContain(restored[0]!.peer.id);
  });

  it('below the healthy panic threshold, every peer is used again', async () => {
    const { peers, client } = await cluster(3, {
      breaker: false,
      healthyPanicThreshold: 0.5,
      outlier: { consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionPercent: 100 },
    });
    const panics: PanicEvent[] = [];
    client.on('panic', (e) => panics.push(e));
    peers[0]!.setHandler(fail500);
    peers[1]!.setHandler(fail500);
    await send(client, 6);
    expect(panics).toEqual([{ service: 'api', active: true, healthy: 1, total: 3 }]);
    const stats = client.stats().services.api!;
    expect(stats.panic).toBe(true);
    expect(stats.peers.filter((p) => p.ejected)).toHaveLength(2);
    expect(stats.eligiblePeers).toBe(3);
    const before = peers.map((p) => p.requests);
    await send(client, 9);
    // In panic mode the ejected peers get traffic again rather than leaving one peer alone.
    expect(peers[0]!.requests).toBeGreaterThan(before[0]!);
    expect(peers[1]!.requests).toBeGreaterThan(before[1]!);
  });
});
