import { afterEach, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import type { ServiceInstance } from '@peerlb/registry';
import { createClient, seededRandom, undiciPoolFactory, type Client, type TransportFactory } from '../src/index.js';
import { PeerTransport, resolvePoolOptions } from '../src/transport/index.js';
import { delay, startPeer, TestRegistry, waitFor, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function cluster(n: number, factory?: TransportFactory, retireGraceMs = 5000) {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  const peers: TestPeer[] = [];
  for (let i = 0; i < n; i++) {
    const peer = await startPeer(`api-${i}`);
    cleanups.push(() => peer.close());
    await registry.add('api', peer);
    peers.push(peer);
  }
  const client: Client = createClient({
    registry,
    random: seededRandom(9),
    retireGraceMs,
    ...(factory ? { transportFactory: factory } : {}),
  });
  cleanups.push(() => client.close());
  return { registry, peers, client };
}

async function hitAll(client: Client, peers: TestPeer[]): Promise<void> {
  await waitFor(async () => {
    const res = await client.request({ service: 'api', path: '/' });
    await res.body.dump();
    return peers.every((p) => p.openConnections > 0);
  }, 5000, 'a connection to every peer');
}

describe('one pool per peer', () => {
  it('is created lazily, on first use, by the injected factory', async () => {
    const origins: string[] = [];
    const factory: TransportFactory = (origin, options) => {
      origins.push(origin);
      expect(options).toMatchObject({ connections: 32, pipelining: 1, keepAliveTimeout: 4000 });
      return undiciPoolFactory(origin, options);
    };
    const { peers, client } = await cluster(3, factory);
    const res = await client.request({ service: 'api', path: '/' });
    await res.body.dump();
    expect(origins).toEqual([`http://127.0.0.1:${res.peer.port}`]);
    const stats = client.stats().services.api!;
    expect(stats.peers.filter((p) => p.poolOpen).map((p) => p.id)).toEqual([res.peer.id]);
    await hitAll(client, peers);
    expect(origins).toHaveLength(3);
  });

  it('reuses keep-alive sockets when bodies are consumed', async () => {
    const { peers, client } = await cluster(1);
    for (let i = 0; i < 20; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      await res.body.text();
    }
    // undici may open a second socket while the first is being released; never one per request.
    expect(peers[0]!.connectionsAccepted).toBeLessThanOrEqual(2);
  });

  it('closes the pool when its peer leaves: no socket left open on it', async () => {
    const { registry, peers, client } = await cluster(2);
    await hitAll(client, peers);
    await registry.remove('api-0');
    await waitFor(() => peers[0]!.openConnections === 0, 3000, 'sockets of the removed peer to close');
    expect(peers[1]!.openConnections).toBeGreaterThan(0);
    expect(client.stats().services.api!.peers.map((p) => p.id)).toEqual(['api-1']);
  });

  it('destroys a leaving pool after the grace period even with a request stuck on it; a GET moves on', async () => {
    const { registry, peers, client } = await cluster(2, undefined, 150);
    peers[0]!.setHandler(() => {
      /* never answers */
    });
    peers[1]!.setHandler((_req, res) => res.end('ok'));
    // Force the first attempt onto the stuck peer by keeping the other out until it is in flight.
    await registry.remove('api-1');
    await waitFor(() => client.stats().services.api?.peers.length === 1 || !client.stats().services.api, 2000);
    const pending = client.request({ service: 'api', path: '/', timeoutMs: 10_000 });
    await waitFor(() => peers[0]!.requests === 1, 3000, 'the request to reach the stuck peer');
    await registry.add('api', peers[1]!);
    await waitFor(() => client.stats().services.api!.peers.length === 2, 3000);
    await registry.remove('api-0');
    const res = await pending;
    expect(res.peer.id).toBe('api-1');
    expect(await res.body.text()).toBe('ok');
    await waitFor(() => peers[0]!.openConnections === 0, 3000, 'the stuck socket to be destroyed');
  });

  it('a peer keeps its pool, load history and counters across registry updates', async () => {
    let built = 0;
    const factory: TransportFactory = (origin, options) => {
      built++;
      return undiciPoolFactory(origin, options);
    };
    const { registry, peers, client } = await cluster(1, factory);
    for (let i = 0; i < 3; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      await res.body.text();
    }
    const socketsBefore = peers[0]!.connectionsAccepted;
    // Same id and endpoint, new metadata: the same Peer.
    await registry.register(
      { id: 'api-0', service: 'api', address: '127.0.0.1', port: peers[0]!.port, meta: { version: '2' } },
      { ttlMs: 600_000 },
    );
    await registry.heartbeat('api-0');
    const other = await startPeer('api-1');
    cleanups.push(() => other.close());
    await registry.add('api', other);
    await waitFor(() => client.stats().services.api!.peers.length === 2);
    const kept = client.stats().services.api!.peers.find((p) => p.id === 'api-0')!;
    expect(kept.requests).toBe(3);
    expect(kept.poolOpen).toBe(true);
    expect(built).toBe(1);
    // Its sockets were not touched by the update.
    expect(peers[0]!.openConnections).toBeGreaterThan(0);
    expect(peers[0]!.connectionsAccepted).toBe(socketsBefore);
    // Same id at another port is another endpoint: a fresh Peer, and the old pool is closed.
    const moved = await startPeer('api-0-moved');
    cleanups.push(() => moved.close());
    await registry.register({ id: 'api-0', service: 'api', address: '127.0.0.1', port: moved.port }, { ttlMs: 600_000 });
    await registry.heartbeat('api-0');
    await waitFor(() => client.stats().services.api!.peers.find((p) => p.id === 'api-0')!.port === moved.port);
    expect(client.stats().services.api!.peers.find((p) => p.id === 'api-0')!.requests).toBe(0);
    await waitFor(() => peers[0]!.openConnections === 0, 3000, 'the old endpoint to be released');
  });

  it('client.close() closes every pool', async () => {
    const { peers, client } = await cluster(3);
    await hitAll(client, peers);
    await client.close();
    await waitFor(() => peers.every((p) => p.openConnections === 0), 3000, 'all sockets closed');
    expect(client.stats().closed).toBe(true);
  });
});

const endpoint = (port: number): ServiceInstance => ({ id: 'p', service: 's', address: '127.0.0.1', port, tags: [], meta: {} });

describe('PeerTransport', () => {
  it('closes gracefully when idle and refuses use after retirement', async () => {
    const peer = await startPeer('p');
    cleanups.push(() => peer.close());
    const transport = new PeerTransport(endpoint(peer.port), undiciPoolFactory, resolvePoolOptions({}));
    expect(transport.origin).toBe(`http://127.0.0.1:${peer.port}`);
    expect(transport.created).toBe(false);
    const res = await transport.dispatcher().request({ path: '/', method: 'GET' });
    await res.body.text();
    expect(transport.created).toBe(true);
    await transport.retire(5000);
    expect(() => transport.dispatcher()).toThrow(expect.objectContaining({ code: 'PEERLB_CLOSED' }));
    await waitFor(() => peer.openConnections === 0, 2000);
  });

  it('retiring a transport that was never used opens nothing', async () => {
    let built = 0;
    const transport = new PeerTransport(endpoint(1), (o, p) => {
      built++;
      return new Pool(o, p);
    }, resolvePoolOptions({}));
    await transport.retire(10);
    await delay(5);
    expect(built).toBe(0);
  });
});
