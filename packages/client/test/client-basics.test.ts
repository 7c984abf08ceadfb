import { afterEach, describe, expect, it } from 'vitest';
import {
  CALLER_HEADER,
  consistentHash,
  createClient,
  InvalidOptionsError,
  NoPeersError,
  RateLimitedError,
  seededRandom,
  type Client,
  type ClientOptions,
  type Registry,
} from '../src/index.js';
import { fieldOf, startPeer, TestRegistry, waitFor, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function track<T extends { close(): unknown }>(thing: T): T {
  cleanups.push(() => thing.close());
  return thing;
}

async function setup(peerCount: number, options: Partial<ClientOptions> = {}) {
  const registry = track(new TestRegistry());
  const peers: TestPeer[] = [];
  for (let i = 0; i < peerCount; i++) {
    const peer = track(await startPeer(`api-${i}`));
    await registry.add('api', peer);
    peers.push(peer);
  }
  const client: Client = track(createClient({ registry, random: seededRandom(7), ...options }));
  return { registry, peers, client };
}

describe('createClient: request', () => {
  it('sends a request to a discovered peer and returns status, headers, body and the peer', async () => {
    const { client, peers } = await setup(1);
    const res = await client.request({ service: 'api', path: '/hello', query: { a: 1 } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-peer']).toBe('api-0');
    expect(await res.body.text()).toBe('ok');
    expect(res.peer).toEqual({ id: 'api-0', address: '127.0.0.1', port: peers[0]!.port });
  });

  it('offers json(), arrayBuffer() and dump() on the body', async () => {
    const { client, peers } = await setup(1);
    peers[0]!.setHandler((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ n: 1 }));
    });
    const a = await client.request({ service: 'api', path: '/' });
    expect(await a.body.json()).toEqual({ n: 1 });
    const b = await client.request({ service: 'api', path: '/' });
    expect(new TextDecoder().decode(await b.body.arrayBuffer())).toBe('{"n":1}');
    const c = await client.request({ service: 'api', path: '/' });
    await c.body.dump();
  });

  it('sends POST bodies and the caller header', async () => {
    const { client, peers } = await setup(1, { caller: 'default-caller' });
    let seen = '';
    peers[0]!.setHandler((req, res, body) => {
      seen = `${req.method} ${body.toString()} ${req.headers[CALLER_HEADER]}`;
      res.end();
    });
    const res = await client.request({ service: 'api', path: '/p', method: 'POST', body: 'payload', caller: 'billing' });
    await res.body.dump();
    expect(seen).toBe('POST payload billing');
    const again = await client.request({ service: 'api', path: '/p', method: 'POST', body: 'x' });
    await again.body.dump();
    expect(seen).toBe('POST x default-caller');
  });

  it('does not throw on 4xx and returns a 5xx after retries run out', async () => {
    const { client, peers } = await setup(2, { breaker: false, outlier: false });
    for (const p of peers) p.setHandler((_req, res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    const res = await client.request({ service: 'api', path: '/' });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('busy');
    // Both peers were tried: a 503 on a GET is retried on the other peer.
    expect(peers[0]!.requests + peers[1]!.requests).toBe(2);
    for (const p of peers) p.setHandler((_req, res) => {
      res.statusCode = 404;
      res.end();
    });
    const notFound = await client.request({ service: 'api', path: '/' });
    await notFound.body.dump();
    expect(notFound.statusCode).toBe(404);
    // A 404 is an answer, not a failure: not retried.
    expect(peers[0]!.requests + peers[1]!.requests).toBe(3);
  });

  it('passes the affinity key to the balancer: consistentHash keeps a key on one peer', async () => {
    const { client } = await setup(4, { balancer: consistentHash() });
    for (const key of ['user-1', 'user-2', 'user-3']) {
      const seen = new Set<string>();
      for (let i = 0; i < 5; i++) {
        const res = await client.request({ service: 'api', path: '/', key });
        await res.body.dump();
        seen.add(res.peer.id);
      }
      expect(seen.size).toBe(1);
    }
  });

  it('fails with PEERLB_NO_PEERS when the service has no instance', async () => {
    const { client } = await setup(0);
    const err = await client.request({ service: 'api', path: '/' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoPeersError);
    expect(err).toMatchObject({ code: 'PEERLB_NO_PEERS', reason: 'no-instances', service: 'api' });
  });

  it('waits for a first registry answer only up to the deadline', async () => {
    const silent: Registry = {
      kind: 'silent',
      register: async () => {},
      deregister: async () => {},
      heartbeat: async () => {},
      list: async () => [],
      watch: () => ({ close() {}, [Symbol.dispose]() {} }),
      close: async () => {},
    };
    const client = track(createClient({ registry: silent }));
    const started = Date.now();
    const err = await client.request({ service: 'api', path: '/', timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PEERLB_NO_PEERS', reason: 'no-answer' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('rejects requests after close', async () => {
    const { client } = await setup(1);
    await client.close();
    await expect(client.request({ service: 'api', path: '/' })).rejects.toMatchObject({ code: 'PEERLB_CLOSED' });
  });
});

describe('createClient: validation', () => {
  const registry = new TestRegistry();

  it.each<[string, Partial<ClientOptions>]>([
    ['registry', { registry: {} as Registry }],
    ['timeoutMs', { timeoutMs: -1 }],
    ['retry.maxAttempts', { retry: { maxAttempts: 0 } }],
    ['retry.budget.ratio', { retry: { budget: { ratio: -1 } } }],
    ['breaker.errorThresholdPercentage', { breaker: { errorThresholdPercentage: 500 } }],
    ['outlier.consecutiveFailures', { outlier: { consecutiveFailures: 0 } }],
    ['rateLimit.ratePerSec', { rateLimit: { ratePerSec: 0 } }],
    ['healthyPanicThreshold', { healthyPanicThreshold: 2 }],
    ['pool.connections', { pool: { connections: 0 } }],
    ['pool.keepAliveTimeout', { pool: { keepAliveTimeout: -5 } }],
    ['discovery.maxStalenessMs', { discovery: { maxStalenessMs: 0 } }],
    ['discovery.emptyGraceMs', { discovery: { emptyGraceMs: -1 } }],
    ['balancer', { balancer: {} as never }],
    ['loadMetric', { loadMetric: {} as never }],
    ['random', { random: 3 as never }],
    ['caller', { caller: 'a\r\nb' }],
    ['retireGraceMs', { retireGraceMs: 0 }],
  ])('names the field %s', (field, options) => {
    const fn = () => createClient({ registry, ...options } as ClientOptions);
    expect(fn).toThrow(InvalidOptionsError);
    expect(fieldOf(fn)).toBe(field);
  });

  it('rejects CR/LF in header values before anything is sent', async () => {
    const { client, peers } = await setup(1);
    const err = await client
      .request({ service: 'api', path: '/', headers: { 'x-evil': 'a\r\nInjected: 1' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as InvalidOptionsError).field).toBe('headers.x-evil');
    const bad = [
      { service: 'api', path: '/\r\nx' },
      { service: 'api', path: '/', caller: 'x\ny' },
      { service: 'api', path: '/', headers: { 'bad name': 'v' } },
      { service: 'api', path: '/', headers: { 'x-a': ['ok', 'no\n'] } },
      { service: 'bad name!', path: '/' },
      { service: 'api', path: 'relative' },
    ];
    for (const options of bad) {
      await expect(client.request(options)).rejects.toBeInstanceOf(InvalidOptionsError);
    }
    expect(peers[0]!.requests).toBe(0);
  });
});

describe('rate limit per caller', () => {
  it('limits each caller independently and reports retryAfterMs, sending nothing when limited', async () => {
    const { client, peers } = await setup(1, { rateLimit: { ratePerSec: 1, burst: 2 } });
    for (let i = 0; i < 2; i++) {
      const res = await client.request({ service: 'api', path: '/', caller: 'alice' });
      await res.body.dump();
    }
    const err = await client.request({ service: 'api', path: '/', caller: 'alice' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RateLimitedError);
    expect((err as RateLimitedError).code).toBe('PEERLB_RATE_LIMITED');
    expect((err as RateLimitedError).retryAfterMs).toBeGreaterThan(0);
    expect((err as RateLimitedError).retryAfterMs).toBeLessThanOrEqual(1000);
    expect(peers[0]!.requests).toBe(2);
    // Bob has his own bucket.
    const bob = await client.request({ service: 'api', path: '/', caller: 'bob' });
    await bob.body.dump();
    expect(bob.statusCode).toBe(200);
    expect(peers[0]!.lastCaller).toBe('bob');
  });
});

describe('events and stats', () => {
  it('reports peers, requests and discovery state', async () => {
    const { client, peers, registry } = await setup(2);
    const added: string[] = [];
    client.on('peer:added', (e) => added.push(e.peer.id));
    for (let i = 0; i < 4; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      await res.body.text();
    }
    const stats = client.stats().services.api!;
    expect(stats.discovered).toBe(true);
    expect(stats.stale).toBe(false);
    expect(stats.requests).toBe(4);
    expect(stats.peers.map((p) => p.id)).toEqual(['api-0', 'api-1']);
    expect(stats.peers.reduce((n, p) => n + p.requests, 0)).toBe(4);
    for (const p of stats.peers) {
      expect(p.inFlight).toBe(0);
      expect(p.breaker).toBe('closed');
      expect(p.ejected).toBe(false);
    }
    const removed: string[] = [];
    client.on('peer:removed', (e) => removed.push(e.peer.id));
    const third = track(await startPeer('api-2'));
    await registry.add('api', third);
    await registry.remove(peers[0]!.id);
    await waitFor(() => removed.length === 1 && added.includes('api-2'));
    expect(removed).toEqual(['api-0']);
  });
});
