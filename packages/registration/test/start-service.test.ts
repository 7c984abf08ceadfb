import { Agent, createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRegistry, silentLogger, type Registry } from '@peerlb/registry';
import {
  CALLER_HEADER,
  PortUnavailableError,
  RegistrationFailedError,
  startService,
  type StartServiceOptions,
  type StartedService,
} from '../src/index.js';
import { accepts, httpRequest } from './support/http.js';
import { ScriptedRegistry, waitFor } from './support/scripted-registry.js';

const handles: StartedService[] = [];
const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.close()));
  await Promise.all(closers.splice(0).map((c) => c()));
});

function memory(): MemoryRegistry {
  const r = new MemoryRegistry({ logger: silentLogger });
  closers.push(() => r.close());
  return r;
}

async function start(options: Partial<StartServiceOptions> & { registry: Registry }): Promise<StartedService> {
  const handle = await startService({
    service: 'orders',
    handler: (_req, res) => res.end('ok'),
    handleSignals: false,
    logger: silentLogger,
    check: { ttlMs: 500 },
    drainMs: 0,
    ...options,
  });
  handles.push(handle);
  return handle;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('startService', () => {
  it('listens on an ephemeral port, serves the handler and /health, and registers the real port', async () => {
    const registry = memory();
    const handle = await start({ registry });
    expect(handle.port).toBeGreaterThan(0);
    expect(handle.url).toBe(`http://127.0.0.1:${handle.port}`);
    expect((await httpRequest(`${handle.url}/anything`)).body).toBe('ok');
    const health = await httpRequest(`${handle.url}/health?verbose=1`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: 'passing' });
    expect(health.headers['cache-control']).toBe('no-store');
    expect((await httpRequest(`${handle.url}/health`, { method: 'POST' })).status).toBe(405);
    expect((await httpRequest(`${handle.url}/health`, { method: 'HEAD' })).status).toBe(200);
    const [instance] = await registry.list('orders');
    expect(instance).toMatchObject({ id: handle.id, address: '127.0.0.1', port: handle.port });
  });

  it('/health answers 503 while the health function fails', async () => {
    let healthy = false;
    const handle = await start({ registry: memory(), health: () => healthy, healthPath: '/ready' });
    const down = await httpRequest(`${handle.url}/ready`);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body)).toEqual({ status: 'failing' });
    healthy = true;
    expect((await httpRequest(`${handle.url}/ready`)).status).toBe(200);
    // The default path is now an ordinary request for the handler.
    expect((await httpRequest(`${handle.url}/health`)).body).toBe('ok');
  });

  it('close(): 503 and deregistered first, keeps serving in-flight and late requests for drainMs, then closes', async () => {
    const registry = memory();
    const handle = await start({
      registry,
      drainMs: 400,
      handler: (req, res) => {
        const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
        setTimeout(() => res.end('done'), delay);
      },
    });
    const seen: string[] = [];
    const watch = registry.watch('orders', (u) => {
      if (u.ok) seen.push(u.instances.length === 0 ? 'gone' : 'present');
    });
    closers.push(async () => watch.close());
    await waitFor(() => seen.at(-1) === 'present', 2_000, 'watch sees the instance');

    const inflight = httpRequest(`${handle.url}/slow?delay=600`);
    await sleep(50);
    const closing = handle.close();
    expect(handle.state).toBe('draining');
    await waitFor(() => seen.at(-1) === 'gone', 1_000, 'deregistration seen by the watch');
    const health = await httpRequest(`${handle.url}/health`);
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toEqual({ status: 'draining' });
    // A caller that has not noticed the removal yet still gets an answer, told to reconnect.
    const late = await httpRequest(`${handle.url}/late`);
    expect(late.body).toBe('done');
    expect(late.headers.connection).toBe('close');
    expect((await inflight).body).toBe('done');
    await closing;
    expect(handle.state).toBe('closed');
    expect(await accepts(handle.url)).toBe(false);
    await handle.close();
  });

  it('closes idle keep-alive connections instead of waiting for them', async () => {
    const handle = await start({ registry: memory(), closeTimeoutMs: 60_000 });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    closers.push(async () => agent.destroy());
    await httpRequest(`${handle.url}/a`, { agent });
    const [socket] = Object.values(agent.freeSockets).flat();
    expect(socket).toBeDefined();
    const socketClosed = new Promise<void>((r) => socket!.once('close', () => r()));
    await handle.close();
    await socketClosed;
  });

  it('destroys connections still busy closeTimeoutMs after the drain', async () => {
    const handle = await start({ registry: memory(), closeTimeoutMs: 200, handler: () => {} });
    const stuck = httpRequest(`${handle.url}/never`).catch((e: unknown) => e);
    await sleep(50);
    await handle.close();
    expect(await stuck).toBeInstanceOf(Error);
  });

  it('deregister() keeps the server up with /health answering 503', async () => {
    const registry = memory();
    const handle = await start({ registry });
    await handle.deregister();
    expect(handle.state).toBe('deregistered');
    expect(await registry.list('orders')).toEqual([]);
    expect((await httpRequest(`${handle.url}/x`)).body).toBe('ok');
    const health = await httpRequest(`${handle.url}/health`);
    expect([health.status, JSON.parse(health.body)]).toEqual([503, { status: 'deregistered' }]);
  });

  it('wraps a given server, keeping its own request listeners', async () => {
    const server = createServer((_req, res) => res.end('mine'));
    const handle = await start({ registry: memory(), handler: undefined, server });
    expect(handle.server).toBe(server);
    expect((await httpRequest(`${handle.url}/x`)).body).toBe('mine');
    expect((await httpRequest(`${handle.url}/health`)).status).toBe(200);
  });

  it('refuses a server that already listens', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => server.close(r)));
    await expect(start({ registry: memory(), handler: undefined, server })).rejects.toMatchObject({ field: 'server' });
  });

  it('serves an express-style app and turns handler failures into 500 plus an error event', async () => {
    const errors: Error[] = [];
    const handle = await start({
      registry: memory(),
      handler: undefined,
      app: (req, res, next) => {
        expect(next).toBeUndefined();
        if (req.url === '/throw') throw new Error('sync boom');
        if (req.url === '/reject') return Promise.reject(new Error('async boom'));
        res.end('app');
        return undefined;
      },
    });
    handle.on('error', (e) => errors.push(e));
    expect((await httpRequest(`${handle.url}/`)).body).toBe('app');
    expect((await httpRequest(`${handle.url}/throw`)).status).toBe(500);
    expect((await httpRequest(`${handle.url}/reject`)).status).toBe(500);
    expect(errors.map((e) => e.message)).toEqual(['sync boom', 'async boom']);
  });

  it('rate limits per caller with 429 and Retry-After, never the health endpoint', async () => {
    const handle = await start({ registry: memory(), rateLimit: { ratePerSec: 0.5, burst: 2 } });
    const as = (caller: string) => httpRequest(`${handle.url}/x`, { headers: { [CALLER_HEADER]: caller } });
    expect((await as('billing')).status).toBe(200);
    expect((await as('billing')).status).toBe(200);
    const limited = await as('billing');
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('2');
    expect((await as('shipping')).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await httpRequest(`${handle.url}/health`)).status).toBe(200);
  });

  it('a taken fixed port is a PortUnavailableError, with nothing registered', async () => {
    const blocker = await listenAnywhere();
    closers.push(blocker.close);
    const registry = memory();
    const err = await start({ registry, port: blocker.port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PortUnavailableError);
    expect(err).toMatchObject({ code: 'PEERLB_PORT_UNAVAILABLE', port: blocker.port });
    expect(await registry.list('orders')).toEqual([]);
  });

  it('closes the server when registration fails at startup', async () => {
    const registry = new ScriptedRegistry();
    closers.push(() => registry.close());
    registry.failRegister = Number.POSITIVE_INFINITY;
    const server = createServer((_req, res) => res.end('x'));
    const err = await start({ registry, handler: undefined, server, startupTimeoutMs: 200, backoff: { minMs: 20 } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RegistrationFailedError);
    expect(server.listening).toBe(false);
    // The server was handed back as it came: its own listener, no health endpoint in front.
    expect(server.listeners('request')).toHaveLength(1);
    expect(await registry.list('orders')).toEqual([]);
  });
});

async function listenAnywhere(): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
