import { afterEach, describe, expect, it } from 'vitest';
import {
  AbortedError,
  createClient,
  DeadlineError,
  roundRobin,
  seededRandom,
  UpstreamError,
  type Client,
  type ClientOptions,
  type RetryEvent,
} from '../src/index.js';
import { deadPort, delay, startPeer, TestRegistry, waitFor, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function cluster(n: number, options: Partial<ClientOptions> = {}) {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  const peers: TestPeer[] = [];
  for (let i = 0; i < n; i++) {
    const peer = await startPeer(`api-${i}`);
    cleanups.push(() => peer.close());
    await registry.add('api', peer);
    peers.push(peer);
  }
  const client: Client = createClient({ registry, random: seededRandom(42), ...options });
  cleanups.push(() => client.close());
  return { registry, peers, client };
}

const slowOk = (ms: number) => (_req: unknown, res: import('node:http').ServerResponse) => {
  setTimeout(() => res.end('ok'), ms);
};

describe('retries on another peer', () => {
  it('one of three peers killed under load: no GET fails', async () => {
    const { peers, client } = await cluster(3);
    for (const p of peers) p.setHandler(slowOk(3));
    const failures: unknown[] = [];
    let done = 0;
    const worker = async () => {
      for (let i = 0; i < 60; i++) {
        try {
          const res = await client.request({ service: 'api', path: '/work', timeoutMs: 5000 });
          expect(await res.body.text()).toBe('ok');
          done++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    await waitFor(() => done >= 100, 10_000, 'load to start');
    await peers[1]!.kill();
    await load;
    expect(failures).toEqual([]);
    expect(done).toBe(480);
    expect(peers[1]!.requests).toBeLessThan(480);
    const stats = client.stats().services.api!;
    expect(stats.failures).toBe(0);
  });

  it('a POST that reached a dying peer is not sent again', async () => {
    const { peers, client } = await cluster(2, { breaker: false, outlier: false });
    // Each peer reads the whole request, then dies on it: the request DID reach it.
    for (const p of peers) p.setHandler((req) => req.socket.destroy());
    const retries: RetryEvent[] = [];
    client.on('retry', (e) => retries.push(e));
    const err = await client
      .request({ service: 'api', path: '/charge', method: 'POST', body: '{"amount":1}' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).code).toBe('PEERLB_UPSTREAM');
    expect((err as UpstreamError).reason).toBe('not-retryable');
    expect((err as UpstreamError).peersTried).toHaveLength(1);
    expect((err as UpstreamError).cause).toBeDefined();
    const posts = peers.reduce((n, p) => n + (p.byPath.get('/charge') ?? 0), 0);
    expect(posts).toBe(1);
    expect(retries).toEqual([]);
  });

  it('the same POST declared idempotent is retried on the other peer', async () => {
    const { peers, client } = await cluster(2, { breaker: false, outlier: false });
    for (const p of peers) p.setHandler((req) => req.socket.destroy());
    const err = await client
      .request({ service: 'api', path: '/put', method: 'POST', body: 'x', idempotent: true })
      .catch((e: unknown) => e);
    expect((err as UpstreamError).peersTried.map((p) => p.id).sort()).toEqual(['api-0', 'api-1']);
    expect(peers[0]!.requests + peers[1]!.requests).toBe(2);
  });

  it('a POST whose connection was refused goes to another peer (nothing was sent)', async () => {
    const { registry, peers, client } = await cluster(1, { breaker: false, outlier: false, balancer: roundRobin() });
    await registry.add('api', { id: 'api-dead', port: await deadPort() });
    let refusedThenServed = 0;
    for (let i = 0; i < 10; i++) {
      const res = await client.request({ service: 'api', path: '/p', method: 'POST', body: `n=${i}` });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      expect(res.peer.id).toBe('api-0');
      refusedThenServed++;
    }
    expect(peers[0]!.requests).toBe(refusedThenServed);
    // The dead peer was tried (and refused) along the way.
    expect(client.stats().services.api!.peers.find((p) => p.id === 'api-dead')!.requests).toBeGreaterThan(0);
  });

  it('never retries a streamed body', async () => {
    const { peers, client } = await cluster(2, { breaker: false, outlier: false });
    for (const p of peers) p.setHandler((req) => req.socket.destroy());
    const { Readable } = await import('node:stream');
    const err = await client
      .request({ service: 'api', path: '/s', method: 'PUT', body: Readable.from([Buffer.from('chunk')]) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(peers[0]!.requests + peers[1]!.requests).toBe(1);
  });

  it('stops when the retry budget is spent', async () => {
    const registry = new TestRegistry();
    cleanups.push(() => registry.close());
    for (let i = 0; i < 3; i++) await registry.add('api', { id: `dead-${i}`, port: await deadPort() });
    const client = createClient({
      registry,
      breaker: false,
      outlier: false,
      retry: { maxAttempts: 3, budget: { ratio: 0, minPerSec: 0.1, windowMs: 10_000 } },
    });
    cleanups.push(() => client.close());
    const err = await client.request({ service: 'api', path: '/' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).reason).toBe('budget-exhausted');
    expect((err as UpstreamError).peersTried).toHaveLength(2);
  });

  it('honours a 429 Retry-After: that peer is kept aside, the call goes elsewhere', async () => {
    const { peers, client } = await cluster(2, { outlier: false, balancer: roundRobin() });
    peers[0]!.setHandler((_req, res) => {
      res.statusCode = 429;
      res.setHeader('retry-after', '5');
      res.end();
    });
    for (let i = 0; i < 20; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      expect(res.peer.id).toBe('api-1');
    }
    // It answered 429 once, then was left alone.
    expect(peers[0]!.requests).toBe(1);
    const stats = client.stats().services.api!.peers.find((p) => p.id === 'api-0')!;
    expect(stats.avoidedForMs).toBeGreaterThan(1000);
    expect(stats.eligible).toBe(false);
  });
});

describe('deadlines and cancellation', () => {
  it('a sub-second deadline is respected: PEERLB_DEADLINE, and the slow peer is not retried', async () => {
    const { peers, client } = await cluster(1);
    peers[0]!.setHandler(slowOk(3000));
    const started = Date.now();
    const err = await client.request({ service: 'api', path: '/', timeoutMs: 150 }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(err).toBeInstanceOf(DeadlineError);
    expect((err as DeadlineError).code).toBe('PEERLB_DEADLINE');
    expect((err as DeadlineError).timeoutMs).toBe(150);
    expect((err as DeadlineError).peersTried.map((p) => p.id)).toEqual(['api-0']);
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(900);
    expect(peers[0]!.requests).toBe(1);
  });

  it('the deadline also bounds reading the body', async () => {
    const { peers, client } = await cluster(1);
    peers[0]!.setHandler((_req, res) => {
      res.writeHead(200, { 'content-length': '10' });
      res.write('12345');
    });
    const res = await client.request({ service: 'api', path: '/', timeoutMs: 200 });
    await expect(res.body.text()).rejects.toMatchObject({ code: 'PEERLB_DEADLINE' });
    await waitFor(() => client.stats().services.api!.peers[0]!.inFlight === 0);
  });

  it("the caller's AbortSignal cancels the call", async () => {
    const { peers, client } = await cluster(2);
    for (const p of peers) p.setHandler(slowOk(3000));
    const controller = new AbortController();
    const pending = client.request({ service: 'api', path: '/', signal: controller.signal }).catch((e: unknown) => e);
    await waitFor(() => peers[0]!.requests + peers[1]!.requests === 1);
    controller.abort(new Error('user gave up'));
    const err = await pending;
    expect(err).toBeInstanceOf(AbortedError);
    expect(((err as AbortedError).cause as Error).message).toBe('user gave up');
    await delay(20);
    expect(peers[0]!.requests + peers[1]!.requests).toBe(1);
  });
});
