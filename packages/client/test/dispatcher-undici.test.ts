import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fetch, request } from 'undici';
import { createClient, roundRobin, seededRandom, type Client, type ClientOptions } from '../src/index.js';
import { deadPort, startPeer, TestRegistry, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function cluster(n: number, options: Partial<ClientOptions> = {}) {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  const peers: TestPeer[] = [];
  for (let i = 0; i < n; i++) {
    const peer = await startPeer(`users-${i}`, (req, res, body) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ method: req.method, url: req.url, body: body.toString(), caller: req.headers['x-peerlb-caller'] }));
    });
    cleanups.push(() => peer.close());
    await registry.add('users', peer);
    peers.push(peer);
  }
  const client: Client = createClient({ registry, random: seededRandom(5), ...options });
  cleanups.push(() => client.close());
  return { registry, peers, client };
}

describe('client.dispatcher()', () => {
  it('serves undici.request for one service, whatever the URL origin', async () => {
    const { client, peers } = await cluster(2);
    const dispatcher = client.dispatcher('users', { caller: 'web' });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const res = await request('http://users.internal/v1/list?x=1', { dispatcher });
      expect(res.statusCode).toBe(200);
      seen.add(String(res.headers['x-peer']));
      expect(await res.body.json()).toEqual({ method: 'GET', url: '/v1/list?x=1', body: '', caller: 'web' });
    }
    expect(seen.size).toBe(2);
    expect(peers[0]!.requests + peers[1]!.requests).toBe(20);
    expect(client.stats().services.users!.requests).toBe(20);
  });

  it('routes by host name with the URL convention http://<service>/path', async () => {
    const { client } = await cluster(1);
    const dispatcher = client.dispatcher();
    const res = await request('http://users/hello', { method: 'POST', body: 'hi', dispatcher });
    expect(await res.body.json()).toMatchObject({ method: 'POST', url: '/hello', body: 'hi' });
    await expect(request('http://users.example.com/x', { dispatcher })).rejects.toMatchObject({ code: 'PEERLB_INVALID_OPTIONS' });
  });

  it("serves undici's fetch", async () => {
    const { client } = await cluster(2);
    const dispatcher = client.dispatcher();
    const res = await fetch('http://users/items?id=7', {
      dispatcher,
      method: 'POST',
      body: JSON.stringify({ a: 1 }),
      headers: { 'content-type': 'application/json', 'x-peerlb-caller': 'checkout' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ method: 'POST', url: '/items?id=7', body: '{"a":1}', caller: 'checkout' });
    const get = await fetch('http://users/', { dispatcher });
    expect(get.ok).toBe(true);
    await get.arrayBuffer();
  });

  it('retries a refused connection on another peer, for request and fetch', async () => {
    const { client, registry, peers } = await cluster(1, { breaker: false, outlier: false, balancer: roundRobin() });
    await registry.add('users', { id: 'users-dead', port: await deadPort() });
    const dispatcher = client.dispatcher('users');
    for (let i = 0; i < 8; i++) {
      const res = await request('http://users/x', { dispatcher, method: 'POST', body: 'b' });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      const f = await fetch('http://users/y', { dispatcher });
      expect(f.status).toBe(200);
      await f.text();
    }
    expect(peers[0]!.requests).toBe(16);
    expect(client.stats().services.users!.peers.find((p) => p.id === 'users-dead')!.requests).toBeGreaterThan(0);
    expect(client.stats().services.users!.retries).toBeGreaterThan(0);
  });

  it('fails with PEERLB_NO_PEERS when the service has no instance', async () => {
    const { client } = await cluster(0);
    const dispatcher = client.dispatcher('users');
    await expect(request('http://users/', { dispatcher })).rejects.toMatchObject({ code: 'PEERLB_NO_PEERS', reason: 'no-instances' });
    const err = await fetch('http://users/', { dispatcher }).catch((e: unknown) => e);
    expect(((err as Error).cause as { code?: string }).code).toBe('PEERLB_NO_PEERS');
  });

  it('honours an abort signal', async () => {
    const { client, peers } = await cluster(1);
    peers[0]!.setHandler(() => {
      /* never answers */
    });
    const dispatcher = client.dispatcher('users');
    const err = await request('http://users/', { dispatcher, signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
    expect((err as Error).name).toMatch(/Abort|Timeout/);
    const ferr = await fetch('http://users/', { dispatcher, signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
    expect((ferr as Error).name).toMatch(/Abort|Timeout/);
  });

  it('applies the per-caller rate limit, sending nothing when limited', async () => {
    const { client, peers } = await cluster(1, { rateLimit: { ratePerSec: 1, burst: 1 } });
    const dispatcher = client.dispatcher('users');
    const first = await request('http://users/', { dispatcher, headers: { 'x-peerlb-caller': 'a' } });
    await first.body.dump();
    const err = await request('http://users/', { dispatcher, headers: { 'x-peerlb-caller': 'a' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PEERLB_RATE_LIMITED', caller: 'a' });
    expect((err as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    const other = await request('http://users/', { dispatcher, headers: { 'x-peerlb-caller': 'b' } });
    await other.body.dump();
    expect(peers[0]!.requests).toBe(2);
  });

  it('retries a 429 with Retry-After on another peer and keeps that peer aside, as client.request() does', async () => {
    const { client, peers } = await cluster(2, { outlier: false, balancer: roundRobin() });
    peers[0]!.setHandler((_req, res) => {
      res.statusCode = 429;
      res.setHeader('retry-after', '10');
      res.end();
    });
    const dispatcher = client.dispatcher('users');
    const codes: number[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await request('http://users/', { dispatcher });
      await res.body.dump();
      codes.push(res.statusCode);
    }
    expect(peers[0]!.requests).toBe(1);
    expect(codes.every((c) => c === 200)).toBe(true);
    expect(client.stats().services.users!.retries).toBe(1);
  });

  it('a handler that throws while its call fails is logged, never an unhandled rejection', async () => {
    const warnings: string[] = [];
    const { client, registry } = await cluster(0, { logger: { warn: (m: string) => warnings.push(m) } });
    await registry.add('users', { id: 'users-dead', port: await deadPort() });
    const dispatcher = client.dispatcher('users');
    const failed = new Promise<void>((resolve) => {
      dispatcher.dispatch(
        { origin: 'http://users', path: '/', method: 'GET' },
        {
          onRequestStart: () => {},
          onResponseError: () => {
            resolve();
            throw new Error('handler bug');
          },
        },
      );
    });
    await failed;
    await vi.waitFor(() => expect(warnings.some((w) => w.includes('handler bug'))).toBe(true));
  });

  it('refuses new requests once closed', async () => {
    const { client } = await cluster(1);
    const dispatcher = client.dispatcher('users');
    await dispatcher.close();
    await expect(request('http://users/', { dispatcher })).rejects.toMatchObject({ code: 'PEERLB_CLOSED' });
  });
});

describe('client.dispatcher() body limits', () => {
  const tooLarge = (direction: 'request' | 'response') => ({ code: 'PEERLB_BODY_TOO_LARGE', direction, limitBytes: 64 });

  it('refuses a request body over maxRequestBodyBytes before sending anything; one at the limit goes', async () => {
    const { client, peers } = await cluster(1, { maxRequestBodyBytes: 64 });
    const dispatcher = client.dispatcher('users');
    await expect(request('http://users/', { method: 'POST', body: 'x'.repeat(65), dispatcher })).rejects.toMatchObject(
      tooLarge('request'),
    );
    const err = await fetch('http://users/', { method: 'POST', body: 'x'.repeat(65), dispatcher }).catch((e: unknown) => e);
    expect((err as Error).cause).toMatchObject(tooLarge('request'));
    expect(peers[0]!.requests).toBe(0);
    const res = await request('http://users/', { method: 'POST', body: 'x'.repeat(64), dispatcher });
    expect(await res.body.json()).toMatchObject({ body: 'x'.repeat(64) });
  });

  it('cuts a streamed request body once it passes the limit', async () => {
    const { client, peers } = await cluster(1, { maxRequestBodyBytes: 64 });
    const dispatcher = client.dispatcher('users');
    async function* chunks() {
      for (let i = 0; i < 10; i++) yield Buffer.alloc(16, 'y');
    }
    const body = Readable.from(chunks());
    const err = await request('http://users/', { method: 'POST', body, dispatcher }).catch((e: unknown) => e);
    expect(err).toMatchObject(tooLarge('request'));
    // The peer never got a whole request, and the caller's stream was ended.
    expect(peers[0]!.requests).toBe(0);
    await vi.waitFor(() => expect(body.destroyed).toBe(true));
  });

  it('refuses a response whose Content-Length is over maxResponseBodyBytes, and cuts an unannounced one', async () => {
    const { client, peers } = await cluster(1, { maxResponseBodyBytes: 64 });
    const dispatcher = client.dispatcher('users');
    peers[0]!.setHandler((_req, res) => res.end('z'.repeat(65)));
    await expect(request('http://users/', { dispatcher })).rejects.toMatchObject(tooLarge('response'));
    const fetched = await fetch('http://users/', { dispatcher }).catch((e: unknown) => e);
    expect((fetched as Error).cause).toMatchObject(tooLarge('response'));
    // Chunked, no Content-Length: the body fails once it passes the limit.
    peers[0]!.setHandler((_req, res) => {
      res.write('z'.repeat(40));
      setTimeout(() => res.end('z'.repeat(40)), 20);
    });
    const res = await request('http://users/', { dispatcher });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toMatchObject(tooLarge('response'));
    // Within the limit, nothing changes; and none of this counted against the peer.
    peers[0]!.setHandler((_req, res) => res.end('z'.repeat(64)));
    expect(await (await request('http://users/', { dispatcher })).body.text()).toBe('z'.repeat(64));
    expect(client.stats().services.users!.peers[0]!.breaker).toBe('closed');
  });
});
