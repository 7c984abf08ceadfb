import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BodyTooLargeError,
  createClient,
  NoPeersError,
  RateLimitedError,
  type Client,
  type ClientOptions,
} from '@peerlb/client';
import { MemoryRegistry, silentLogger, type PeerlbError } from '@peerlb/registry';
import { CALLER_HEADER, createRequestRateLimiter, startService, type StartedService } from '@peerlb/registration';
import { startPeer, type Peer } from './support/servers.js';

// Limits that hold whatever the other side sends: body sizes both ways, requests in flight per
// peer, and the number of callers a rate limiter remembers under a flood of distinct ones.

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function cluster(peers: Peer[], options: Partial<ClientOptions> = {}): Promise<Client> {
  const registry = new MemoryRegistry({ logger: silentLogger });
  for (const [i, peer] of peers.entries()) {
    await registry.register({ id: `p-${i}`, service: 'api', address: '127.0.0.1', port: peer.port }, { ttlMs: 600_000 });
    await registry.heartbeat(`p-${i}`);
  }
  const client = createClient({ registry, logger: silentLogger, closeRegistry: true, timeoutMs: 10_000, ...options });
  cleanups.push(() => client.close());
  return client;
}

async function peer(handler?: Parameters<typeof startPeer>[0]): Promise<Peer> {
  const p = await startPeer(handler);
  cleanups.push(() => p.close());
  return p;
}

/** A peer that reads the request body and answers with its length. */
const echoLength: Parameters<typeof startPeer>[0] = (req, res) => {
  let n = 0;
  req.on('data', (c: Buffer) => (n += c.length));
  req.on('end', () => res.end(String(n)));
  req.on('error', () => {});
};

describe('request body size limit', () => {
  it('a string or bytes over the limit are refused before anything is sent; at the limit they go', async () => {
    const p = await peer(echoLength);
    const client = await cluster([p], { maxRequestBodyBytes: 1_000 });
    for (const body of ['x'.repeat(1_001), 'é'.repeat(501), Buffer.alloc(1_001), new Uint8Array(5_000_000)]) {
      const err = await client.request({ service: 'api', path: '/', method: 'POST', body }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BodyTooLargeError);
      expect((err as BodyTooLargeError).code).toBe('PEERLB_BODY_TOO_LARGE');
      expect((err as BodyTooLargeError).direction).toBe('request');
    }
    expect(p.requests).toBe(0);
    for (const body of ['x'.repeat(1_000), 'é'.repeat(500), Buffer.alloc(1_000), '']) {
      const res = await client.request({ service: 'api', path: '/', method: 'POST', body });
      expect(await res.body.text()).toBe(String(Buffer.byteLength(body)));
    }
  });

  it('a stream is cut off once it passes the limit, with the typed error, and never sent again', async () => {
    const peers = [await peer(echoLength), await peer(echoLength)];
    const client = await cluster(peers, { maxRequestBodyBytes: 64 * 1024 });
    const chunks = function* () {
      for (let i = 0; i < 1_000; i++) yield Buffer.alloc(1024, i % 256);
    };
    const err = await client
      .request({ service: 'api', path: '/', method: 'PUT', body: Readable.from(chunks()) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect((err as BodyTooLargeError).direction).toBe('request');
    // PUT is idempotent, but the body is a stream and the fault is ours: one attempt only.
    expect(peers[0]!.requests + peers[1]!.requests).toBeLessThanOrEqual(1);
    expect(client.stats().services.api!.peers.every((p) => p.failures === 0)).toBe(true);
    // Within the limit, a stream goes through.
    const res = await client.request({ service: 'api', path: '/', method: 'PUT', body: Readable.from([Buffer.alloc(60 * 1024)]) });
    expect(await res.body.text()).toBe(String(60 * 1024));
  });
});

describe('response body size limit', () => {
  const big = Buffer.alloc(256 * 1024, 1);

  it('refuses at the headers an answer whose Content-Length is over the limit, without reading it', async () => {
    let completed = 0;
    let cut = 0;
    const p = await peer((req, res) => {
      res.on('finish', () => completed++);
      res.on('close', () => res.writableFinished || cut++);
      res.writeHead(200, { 'content-length': String(big.length * 40) });
      // Written slowly: the client has every chance to read it, and must not.
      let i = 0;
      const timer = setInterval(() => {
        if (res.destroyed || i++ >= 40) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(big);
      }, 20);
    });
    const client = await cluster([p], { maxResponseBodyBytes: 1024 * 1024 });
    const err = await client.request({ service: 'api', path: '/big' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect((err as BodyTooLargeError).direction).toBe('response');
    expect((err as BodyTooLargeError).peer?.id).toBe('p-0');
    await expectEventually(() => cut === 1);
    expect(completed).toBe(0);
    // Not the peer's fault, and the client carries on.
    expect(client.stats().services.api!.peers[0]!.failures).toBe(0);
    expect(client.stats().services.api!.peers[0]!.inFlight).toBe(0);
    const head = await client.request({ service: 'api', path: '/big', method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    await head.body.dump();
  });

  it('a body without Content-Length fails the read once it passes the limit; at the limit it is whole', async () => {
    const p = await peer((req, res) => {
      const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size'));
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked
      let left = size;
      const write = () => {
        while (left > 0) {
          const n = Math.min(left, 16 * 1024);
          left -= n;
          if (!res.write(Buffer.alloc(n, 7))) return void res.once('drain', write);
        }
        res.end();
      };
      write();
    });
    const limit = 100 * 1024;
    const client = await cluster([p], { maxResponseBodyBytes: limit });
    const over = await client.request({ service: 'api', path: `/?size=${limit + 1}` });
    expect(over.statusCode).toBe(200);
    const err = await over.body.arrayBuffer().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BodyTooLargeError);
    expect((err as BodyTooLargeError).limitBytes).toBe(limit);
    const huge = await client.request({ service: 'api', path: `/?size=${50 * 1024 * 1024}` });
    expect(await huge.body.text().catch((e: unknown) => e)).toBeInstanceOf(BodyTooLargeError);
    const exact = await client.request({ service: 'api', path: `/?size=${limit}` });
    expect((await exact.body.arrayBuffer()).byteLength).toBe(limit);
    const stats = client.stats().services.api!;
    expect(stats.peers[0]!.failures).toBe(0);
    expect(stats.peers[0]!.inFlight).toBe(0);
  });
});

describe('max concurrent requests per peer', () => {
  it('never more in flight at one peer than the limit; beyond it calls go elsewhere, then fail fast', async () => {
    const inFlight = [0, 0];
    const highest = [0, 0];
    const slow = (i: number): Parameters<typeof startPeer>[0] => (_req, res) => {
      highest[i] = Math.max(highest[i]!, ++inFlight[i]!);
      setTimeout(() => {
        inFlight[i]!--;
        res.end('ok');
      }, 300);
    };
    const peers = [await peer(slow(0)), await peer(slow(1))];
    const client = await cluster(peers, { maxConcurrentPerPeer: 3, retry: false });
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        client.request({ service: 'api', path: '/' }).then(
          async (res) => (await res.body.text(), 'ok' as const),
          (err: unknown) => err,
        ),
      ),
    );
    const ok = results.filter((r) => r === 'ok').length;
    const refused = results.filter((r) => r instanceof NoPeersError) as NoPeersError[];
    expect(ok).toBe(6);
    expect(refused).toHaveLength(14);
    expect(refused[0]!.code).toBe('PEERLB_NO_PEERS');
    expect(refused[0]!.message).toMatch(/maxConcurrentPerPeer/);
    expect(refused.every((e) => e.reason === 'all-busy')).toBe(true);
    expect(highest).toEqual([3, 3]);
    // Capacity comes back as answers end.
    const again = await client.request({ service: 'api', path: '/' });
    expect(await again.body.text()).toBe('ok');
  });

  it('an answer whose body is not read yet still counts against its peer', async () => {
    const p = await peer((_req, res) => res.end('ok'));
    const client = await cluster([p], { maxConcurrentPerPeer: 2 });
    const held = [await client.request({ service: 'api', path: '/' }), await client.request({ service: 'api', path: '/' })];
    const err = await client.request({ service: 'api', path: '/' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoPeersError);
    for (const res of held) await res.body.text();
    const res = await client.request({ service: 'api', path: '/' });
    expect(await res.body.text()).toBe('ok');
  });
});

describe('per-caller rate limits under a flood of distinct callers', () => {
  it('through the client: callers are limited independently, and the flood only evicts the least recently seen', async () => {
    const p = await peer((_req, res) => res.end('ok'));
    const client = await cluster([p], { rateLimit: { ratePerSec: 0.001, burst: 1, maxCallers: 50 } });
    const call = (caller: string) => client.request({ service: 'api', path: '/', caller }).then((r) => r.body.text());
    await call('steady');
    const limited = await call('steady').catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RateLimitedError);
    expect((limited as RateLimitedError).retryAfterMs).toBeGreaterThan(0);
    const sent = p.requests;
    // 49 other callers: 'steady' is still among the 50 remembered, still limited, nothing sent.
    for (let i = 0; i < 49; i++) await call(`flood-${i}`);
    expect(await call('steady').catch((e: unknown) => (e as PeerlbError).code)).toBe('PEERLB_RATE_LIMITED');
    expect(p.requests).toBe(sent + 49);
    // A flood far larger than the cap: every new caller gets its first request through...
    for (let i = 49; i < 2_000; i++) await call(`flood-${i}`);
    expect(p.requests).toBe(sent + 2_000);
    // ...and memory stayed bounded: 'steady' was forgotten, the documented price of the bound
    // (a forgotten caller comes back with a full bucket).
    expect(await call('steady')).toBe('ok');
  }, 30_000);

  describe('on the serving side', () => {
    let service: StartedService;
    let registry: MemoryRegistry;
    beforeAll(async () => {
      registry = new MemoryRegistry({ logger: silentLogger });
      service = await startService({
        service: 'limited',
        registry,
        handler: (_req, res) => res.end('ok'),
        rateLimit: { ratePerSec: 0.001, burst: 1, maxCallers: 100 },
        handleSignals: false,
        drainMs: 0,
        logger: silentLogger,
        check: { ttlMs: 60_000 },
      });
    });
    afterAll(async () => {
      await service?.close();
      await registry?.close();
    });

    it('the caller cap holds: at most maxCallers buckets after a flood of distinct callers', () => {
      // The same bucket-per-caller LRU as the client's (both come from @peerlb/rate-limit).
      let now = 0;
      const limiter = createRequestRateLimiter({ ratePerSec: 1, burst: 1, maxCallers: 1_000, now: () => (now += 0.01) });
      let refused = 0;
      let largest = 0;
      for (let i = 0; i < 200_000; i++) {
        if (!limiter.take(`caller:${i}`).allowed) refused++;
        if (i % 1_000 === 0) largest = Math.max(largest, limiter.size);
      }
      expect(refused).toBe(0); // every new caller starts with a full bucket
      expect(largest).toBeLessThanOrEqual(1_000);
      expect(limiter.size).toBe(1_000);
    });

    it('a flood of distinct x-peerlb-caller headers: each is limited on its own, 429 with Retry-After', async () => {
      const client = createClient({ registry, logger: silentLogger });
      cleanups.push(() => client.close());
      const status = async (caller: string) => {
        const res = await client.request({ service: 'limited', path: '/', headers: { [CALLER_HEADER]: caller } });
        await res.body.dump();
        return { code: res.statusCode, retryAfter: res.headers['retry-after'] };
      };
      for (let i = 0; i < 300; i++) {
        expect((await status(`c-${i}`)).code).toBe(200);
        if (i % 10 === 0) {
          const again = await status(`c-${i}`);
          expect(again.code).toBe(429);
          expect(Number(again.retryAfter)).toBeGreaterThanOrEqual(1);
        }
      }
    }, 30_000);
  });
});

async function expectEventually(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
