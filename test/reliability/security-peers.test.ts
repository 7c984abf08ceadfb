import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, InvalidOptionsError, UpstreamError, type Client } from '@peerlb/client';
import { MemoryRegistry, silentLogger, type PeerlbError } from '@peerlb/registry';
import { startService, type StartedService } from '@peerlb/registration';
import { startTrap, type Trap } from './support/servers.js';
import { hasOpenssl, makePki, type Pki } from './support/tls.js';

// Peers reached over HTTPS, and requests that must never leave the process.

describe('HTTPS peers', () => {
  let scratch: string;
  let pki: Pki;
  let rogue: Pki;
  let registry: MemoryRegistry;
  let started: StartedService;
  const clients: Client[] = [];

  beforeAll(async () => {
    expect(hasOpenssl(), 'the openssl command line tool is needed to make a test CA').toBe(true);
    scratch = await mkdtemp(join(tmpdir(), 'peerlb-https-peers-'));
    pki = makePki(scratch);
    rogue = makePki(scratch, 'rogue');
    registry = new MemoryRegistry({ logger: silentLogger });
    const server = createHttpsServer({ key: pki.key, cert: pki.cert }, (req, res) => {
      res.end(req.socket && 'encrypted' in req.socket && req.socket.encrypted ? 'ok tls' : 'plain');
    });
    started = await startService({
      service: 'secure-api',
      server,
      registry,
      address: '127.0.0.1',
      check: { ttlMs: 60_000 },
      handleSignals: false,
      drainMs: 0,
      logger: silentLogger,
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await started?.close();
    await registry?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  function client(tls?: { ca: string }): Client {
    const c = createClient({ registry, logger: silentLogger, timeoutMs: 5_000, ...(tls ? { pool: { tls } } : {}) });
    clients.push(c);
    return c;
  }

  it('an https server registers itself as https, and the client reaches it over TLS with the CA it trusts', async () => {
    const [instance] = await registry.list('secure-api');
    expect(instance?.meta.scheme).toBe('https');
    expect(started.url).toMatch(/^https:/);
    const c = client({ ca: pki.ca });
    for (let i = 0; i < 5; i++) {
      const res = await c.request({ service: 'secure-api', path: '/' });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('ok tls');
    }
  });

  it('a peer whose certificate is not trusted is never sent the request: a typed error', async () => {
    for (const c of [client(), client({ ca: rogue.ca })]) {
      const err = await c.request({ service: 'secure-api', path: '/' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as PeerlbError).code).toBe('PEERLB_UPSTREAM');
      expect(String((err as Error).cause && ((err as Error).cause as Error).message)).toMatch(/certificate/i);
    }
  });
});

describe('CR/LF in header values: refused before anything leaves', () => {
  // The one peer is a trap: a TCP listener that never answers and counts every byte it receives.
  let trap: Trap;
  let registry: MemoryRegistry;
  let c: Client;

  beforeAll(async () => {
    trap = await startTrap();
    registry = new MemoryRegistry({ logger: silentLogger });
    await registry.register({ id: 'trap-1', service: 'trap', address: '127.0.0.1', port: trap.port }, { ttlMs: 600_000 });
    await registry.heartbeat('trap-1');
    c = createClient({ registry, logger: silentLogger, timeoutMs: 300, retry: false });
  });
  afterAll(async () => {
    await c?.close();
    await registry?.close();
    await trap?.close();
  });

  const injections = ['a\r\nx-injected: 1', 'a\nb', 'a\rb', '\r\n', 'a\u0000b', 'ok\r\n\r\nGET /smuggled HTTP/1.1'];

  it('client.request: header values, arrays, the caller header and the caller option', async () => {
    const attempts: Array<Parameters<Client['request']>[0]> = [];
    for (const bad of injections) {
      attempts.push({ service: 'trap', path: '/', headers: { 'x-note': bad } });
      attempts.push({ service: 'trap', path: '/', headers: { 'x-list': ['fine', bad] } });
      attempts.push({ service: 'trap', path: '/', headers: { 'x-peerlb-caller': bad } });
      attempts.push({ service: 'trap', path: '/', caller: bad });
      attempts.push({ service: 'trap', path: `/x${bad}` });
      attempts.push({ service: 'trap', path: '/', method: `GET${bad}` });
      attempts.push({ service: 'trap', path: '/', headers: { [`x-name${bad}`]: 'v' } });
    }
    for (const options of attempts) {
      const err = await c.request(options).catch((e: unknown) => e);
      expect(err, JSON.stringify(options)).toBeInstanceOf(InvalidOptionsError);
      expect((err as PeerlbError).code).toBe('PEERLB_INVALID_OPTIONS');
    }
    expect(trap.connections).toBe(0);
    expect(trap.bytes).toBe(0);
  });

  it('the undici dispatcher: undici refuses them (typed as for client.request), nothing is sent', async () => {
    // dispatcher.request() is undici's own request() on this dispatcher (test/ does not depend on undici).
    const dispatcher = c.dispatcher('trap');
    for (const bad of injections) {
      const err = await dispatcher
        .request({ origin: 'http://trap', path: '/', method: 'GET', headers: { 'x-note': bad } })
        .catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('PEERLB_INVALID_OPTIONS');
      expect(((err as Error).cause as { code?: string }).code).toBe('UND_ERR_INVALID_ARG');
    }
    expect(trap.connections).toBe(0);
    expect(trap.bytes).toBe(0);
  });

  it('(control) a clean request does reach the trap, so the counts above could have moved', async () => {
    const err = await c.request({ service: 'trap', path: '/', headers: { 'x-note': 'clean' } }).catch((e: unknown) => e);
    expect((err as PeerlbError).code).toBe('PEERLB_DEADLINE');
    expect(trap.bytes).toBeGreaterThan(0);
  });
});
