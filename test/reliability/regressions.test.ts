import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, DeadlineError, type ClientOptions, type TransportFactory } from '@peerlb/client';
import {
  ConsulRegistry,
  InvalidOptionsError,
  MemoryRegistry,
  parseInstance,
  RegistryUnavailableError,
  silentLogger,
  type WatchUpdate,
} from '@peerlb/registry';
import { startPeer, startRawServer, type RawServer } from './support/servers.js';

// Regression tests for the library fixes the reliability suite forced, one per fix, named after it.

const http = (status: string, headers: Record<string, string>, body: string) =>
  `HTTP/1.1 ${status}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n${body}`;

describe('regression: registry entries asking for a scheme other than http/https were accepted (and dialled over http)', () => {
  const base = { id: 'a-1', service: 'a', address: '127.0.0.1', port: 8080 };

  it('parseInstance drops them, whatever the case or spacing', () => {
    for (const scheme of ['ftp', 'file', 'javascript', 'HTTP', 'https ', '', 'http\r\n']) {
      const result = parseInstance({ ...base, meta: { scheme } });
      expect(result.ok).toBe(false);
      expect(!result.ok && result.field).toBe('meta.scheme');
    }
    for (const scheme of ['http', 'https']) expect(parseInstance({ ...base, meta: { scheme } }).ok).toBe(true);
  });

  it('register() refuses them with a typed error naming the field', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    const err = await registry.register({ ...base, meta: { scheme: 'gopher' } }, { ttlMs: 1_000 }).catch((e: unknown) => e);
    await registry.close();
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as InvalidOptionsError).field).toBe('instance.meta.scheme');
  });
});

describe('consul regressions', () => {
  let raw: RawServer;
  beforeAll(async () => {
    raw = await startRawServer(() => '');
  });
  afterAll(async () => {
    await raw?.close();
  });

  const registry = () =>
    new ConsulRegistry({ address: raw.url, requestTimeoutMs: 60_000, waitMs: 1_000, backoff: { minMs: 50, maxMs: 100 }, logger: silentLogger, env: {} });

  it('regression: an answer whose entries are all invalid was taken for an empty service (watchers dropped every peer)', async () => {
    const entries = [{ Service: { ID: 'x', Service: 'svc', Address: 'http://evil', Port: 99_999 } }, 'junk', null];
    raw.answer = () => http('200 OK', { 'content-type': 'application/json', 'x-consul-index': '5' }, JSON.stringify(entries));
    const r = registry();
    try {
      const err = await r.list('svc').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryUnavailableError);
      expect(String((err as Error).message)).toMatch(/none of the 3 entries is a valid instance/);
      // An empty array is still an empty service, and one valid entry among junk is still served.
      raw.answer = () => http('200 OK', { 'content-type': 'application/json', 'x-consul-index': '6' }, '[]');
      expect(await r.list('svc')).toEqual([]);
      const valid = { Node: { Address: '127.0.0.1' }, Service: { ID: 'ok-1', Service: 'svc', Address: '', Port: 80 } };
      raw.answer = () => http('200 OK', { 'content-type': 'application/json', 'x-consul-index': '7' }, JSON.stringify([...entries, valid]));
      expect((await r.list('svc')).map((i) => i.id)).toEqual(['ok-1']);
    } finally {
      await r.close();
    }
  });

  it('regression: a response cut off mid-body hung the call (a blocking query: its whole wait) instead of failing', async () => {
    raw.answer = () => http('200 OK', { 'content-type': 'application/json', 'x-consul-index': '9', 'content-length': '1000' }, '[{"Node":');
    const r = registry();
    const hang = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000).unref());
    try {
      const err = await Promise.race([r.list('svc').catch((e: unknown) => e), hang]);
      expect(err).toBeInstanceOf(RegistryUnavailableError);
      expect(String((err as Error).message)).toMatch(/before its body was complete/);
      const updates: WatchUpdate[] = [];
      const watch = r.watch('svc', (u) => updates.push(u));
      const first = await Promise.race([
        new Promise<WatchUpdate>((resolve) => {
          const poll = setInterval(() => {
            if (updates.length > 0) {
              clearInterval(poll);
              resolve(updates[0]!);
            }
          }, 10);
          poll.unref();
        }),
        hang,
      ]);
      watch.close();
      expect(first).not.toBe('hung');
      expect((first as WatchUpdate).ok).toBe(false);
    } finally {
      await r.close();
    }
  });
});

describe('client regressions', () => {
  async function singlePeerClient(options: Partial<ClientOptions> = {}) {
    const peer = await startPeer((req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    const registry = new MemoryRegistry({ logger: silentLogger });
    await registry.register({ id: 'p-1', service: 'api', address: '127.0.0.1', port: peer.port }, { ttlMs: 600_000 });
    await registry.heartbeat('p-1');
    const client = createClient({ registry, closeRegistry: true, logger: silentLogger, timeoutMs: 2_000, ...options });
    return { peer, client, close: async () => (await client.close(), await peer.close()) };
  }

  it('regression: requests the peer pool refused (e.g. a transfer-encoding header) wedged the pool for good after `connections` of them', async () => {
    const { peer, client, close } = await singlePeerClient({ pool: { connections: 2 } });
    try {
      for (let i = 0; i < 6; i++) {
        for (const headers of [{ 'transfer-encoding': 'chunked' }, { connection: 'upgrade', upgrade: 'h2c' }, { 'keep-alive': '5' }]) {
          const err = await client.request({ service: 'api', path: '/', headers }).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(InvalidOptionsError);
        }
        // Through the undici dispatcher too: the same call core, the same typed error.
        const viaDispatcher = await client
          .dispatcher('api')
          .request({ origin: 'http://api', path: '/', method: 'GET', headers: { 'transfer-encoding': 'chunked' } })
          .catch((e: unknown) => e);
        expect(viaDispatcher).toBeInstanceOf(InvalidOptionsError);
        expect(((viaDispatcher as Error).cause as { code?: string }).code).toBe('UND_ERR_INVALID_ARG');
      }
      const res = await client.request({ service: 'api', path: '/' });
      expect(await res.body.text()).toBe('ok');
      expect(peer.requests).toBe(1);
    } finally {
      await close();
    }
  });

  it('regression: a call whose request never left the pool queue outlived its deadline', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    await registry.register({ id: 'p-1', service: 'api', address: '127.0.0.1', port: 9 }, { ttlMs: 600_000 });
    await registry.heartbeat('p-1');
    // A transport that takes requests and never answers, whatever the abort signal says.
    const blackHole = (() => ({
      request: () => {},
      close: async () => {},
      destroy: async () => {},
    })) as unknown as TransportFactory;
    const client = createClient({ registry, closeRegistry: true, logger: silentLogger, transportFactory: blackHole });
    try {
      const controller = new AbortController();
      const settled = Promise.all([
        client.request({ service: 'api', path: '/', timeoutMs: 200 }).catch((e: unknown) => e),
        client.request({ service: 'api', path: '/', timeoutMs: 60_000, signal: controller.signal }).catch((e: unknown) => e),
      ]);
      setTimeout(() => controller.abort(new Error('caller gave up')), 100).unref();
      const hang = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000).unref());
      const result = await Promise.race([settled, hang]);
      expect(result).not.toBe('hung');
      const [deadline, aborted] = result as unknown[];
      expect(deadline).toBeInstanceOf(DeadlineError);
      expect((aborted as { code?: string }).code).toBe('PEERLB_ABORTED');
      expect(client.stats().services.api!.peers[0]!.inFlight).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('regression: a body of the wrong type failed half-way through the upload, and counted against the peer', async () => {
    const { peer, client, close } = await singlePeerClient();
    try {
      for (const body of [['a', 1, 'b'], { an: 'object' }, 42, new Set(['x'])]) {
        const err = await client
          .request({ service: 'api', path: '/', method: 'PUT', body: body as unknown as string })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidOptionsError);
        expect((err as InvalidOptionsError).field).toBe('body');
      }
      await new Promise((r) => setTimeout(r, 50));
      expect(peer.requests).toBe(0);
      expect(client.stats().services.api!.peers[0]!.failures).toBe(0);
    } finally {
      await close();
    }
  });

  it('regression: a content-length header contradicting the body was an untyped undici error', async () => {
    const { client, close } = await singlePeerClient();
    try {
      const err = await client
        .request({ service: 'api', path: '/', method: 'POST', headers: { 'content-length': '5' }, body: 'abc' })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidOptionsError);
      expect((err as InvalidOptionsError).field).toBe('headers.content-length');
    } finally {
      await close();
    }
  });
});
