import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRegistry, RegistryAuthError, silentLogger, type ServiceInstance } from '@peerlb/registry';
import { RegistrationFailedError, registerService, type RegisterServiceOptions, type ServiceHandle } from '../src/index.js';
import { ScriptedRegistry, waitFor } from './support/scripted-registry.js';

const handles: ServiceHandle[] = [];
const registries: Array<{ close(): Promise<void> }> = [];
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(handles.splice(0).map((h) => h.close()));
  await Promise.all(registries.splice(0).map((r) => r.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

function scripted(): ScriptedRegistry {
  const r = new ScriptedRegistry();
  registries.push(r);
  return r;
}

async function register(options: Partial<RegisterServiceOptions> & { registry: RegisterServiceOptions['registry'] }): Promise<ServiceHandle> {
  const handle = await registerService({
    service: 'orders',
    port: 4000,
    logger: silentLogger,
    check: { ttlMs: 300 },
    backoff: { minMs: 20, maxMs: 100 },
    ...options,
  });
  handles.push(handle);
  return handle;
}

const ids = (list: ServiceInstance[]) => list.map((i) => i.id);

describe('registerService', () => {
  it('registers, heartbeats within the TTL, and close() deregisters without closing a given registry', async () => {
    const registry = scripted();
    const handle = await register({ registry, tags: ['v1'], meta: { zone: 'a' } });
    expect(handle.id).toMatch(/^orders-[A-Za-z0-9_-]{10}$/);
    expect(handle.address).toBe('127.0.0.1');
    expect(handle.port).toBe(4000);
    expect(handle.state).toBe('registered');
    expect(handle.registry).toBe(registry);
    const [instance] = await registry.list('orders');
    expect(instance).toMatchObject({ id: handle.id, port: 4000, tags: ['v1'], meta: { zone: 'a' } });
    // Still passing well after several TTLs: the heartbeat keeps it alive.
    await new Promise((r) => setTimeout(r, 800));
    expect(ids(await registry.list('orders'))).toEqual([handle.id]);
    expect(registry.count('heartbeat')).toBeGreaterThanOrEqual(4);

    const states: string[] = [];
    handle.on('state', (s) => states.push(s));
    await handle.close();
    await handle.close();
    expect(states).toEqual(['draining', 'closed']);
    expect(await registry.list('orders')).toEqual([]);
    expect(registry.closed).toBe(false);
    const beats = registry.count('heartbeat');
    await new Promise((r) => setTimeout(r, 300));
    expect(registry.count('heartbeat')).toBe(beats);
  });

  it('gives each instance its own id', async () => {
    const registry = scripted();
    const a = await register({ registry });
    const b = await register({ registry });
    expect(a.id).not.toBe(b.id);
    expect(ids(await registry.list('orders')).sort()).toEqual([a.id, b.id].sort());
  });

  it('retries a failing startup registration with backoff until it works', async () => {
    const registry = scripted();
    registry.failRegister = 3;
    const handle = await register({ registry });
    expect(registry.count('register')).toBe(4);
    expect(handle.state).toBe('registered');
    expect(ids(await registry.list('orders'))).toEqual([handle.id]);
  });

  it('gives up after startupTimeoutMs with a typed error, leaving nothing registered', async () => {
    const registry = scripted();
    registry.failRegister = Number.POSITIVE_INFINITY;
    const err = await register({ registry, startupTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistrationFailedError);
    expect(err).toMatchObject({ code: 'PEERLB_REGISTRATION_FAILED' });
    expect((err as RegistrationFailedError).attempts).toBeGreaterThan(1);
    expect((err as RegistrationFailedError).cause).toMatchObject({ code: 'PEERLB_REGISTRY_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/within 300 ms/);
  });

  it('a register call that reached the registry but never answered is undone', async () => {
    const registry = scripted();
    registry.hangRegister = 1;
    const err = await register({ registry, startupTimeoutMs: 200, callTimeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistrationFailedError);
    const id = (err as RegistrationFailedError).instanceId;
    expect(registry.calls.some((c) => c.op === 'deregister' && c.id === id)).toBe(true);
    expect(await registry.list('orders')).toEqual([]);
    await registry.memory.heartbeat(id).then(
      () => expect.fail('instance is still registered'),
      (e: unknown) => expect(e).toMatchObject({ code: 'PEERLB_NOT_REGISTERED' }),
    );
  });

  it('a registry that never answers fails startup with a message saying it timed out', async () => {
    const registry = scripted();
    registry.hangRegister = Number.POSITIVE_INFINITY;
    const err = await register({ registry, startupTimeoutMs: 350, callTimeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistrationFailedError);
    expect((err as Error).message).toMatch(/timed out after/);
    expect(await registry.list('orders')).toEqual([]);
  });

  it('listeners given as the on option see startup too', async () => {
    const registry = scripted();
    const seen: string[] = [];
    const handle = await register({
      registry,
      on: { state: (state) => seen.push(state), registered: ({ attempts }) => seen.push(`registered:${attempts}`) },
    });
    expect(seen).toEqual(['registering', 'registered', 'registered:1']);
    await handle.close();
    expect(seen.slice(3)).toEqual(['draining', 'closed']);
  });

  it('does not retry what retrying cannot fix', async () => {
    const registry = scripted();
    registry.failRegister = 1;
    registry.registerError = () => new RegistryAuthError('ACL not found');
    const err = await register({ registry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistrationFailedError);
    expect((err as RegistrationFailedError).attempts).toBe(1);
    expect((err as RegistrationFailedError).cause).toBeInstanceOf(RegistryAuthError);
  });

  it('an aborted signal stops startup with AbortedError and nothing registered', async () => {
    const registry = scripted();
    registry.failRegister = Number.POSITIVE_INFINITY;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await expect(register({ registry, signal: controller.signal })).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    expect(await registry.list('orders')).toEqual([]);
  });

  it('aborting the signal after startup closes the handle', async () => {
    const registry = scripted();
    const controller = new AbortController();
    const handle = await register({ registry, signal: controller.signal });
    const closed = new Promise<void>((r) => handle.once('closed', r));
    controller.abort();
    await closed;
    expect(handle.state).toBe('closed');
    expect(await registry.list('orders')).toEqual([]);
  });

  it('registers again when the registry forgets it, and says so', async () => {
    const registry = scripted();
    const handle = await register({ registry });
    const events: string[] = [];
    handle.on('lost', (e) => events.push(`lost:${(e as { code?: string }).code}`));
    handle.on('reregistered', ({ attempts }) => events.push(`reregistered:${attempts}`));
    handle.on('error', () => events.push('error'));
    handle.on('state', (s) => events.push(s));
    registry.failRegister = 2;
    registry.memory.reset();
    await waitFor(async () => ids(await registry.list('orders')).includes(handle.id), 5_000, 're-registration');
    expect(events).toEqual([
      'lost:PEERLB_NOT_REGISTERED',
      'reregistering',
      'error',
      'error',
      'reregistered:3',
      'registered',
    ]);
    expect(handle.state).toBe('registered');
  });

  it('a registry that forgets the instance before its first heartbeat gets it registered again', async () => {
    const registry = scripted();
    registry.forgetAfterRegister = 1;
    const handle = await register({ registry });
    await waitFor(async () => ids(await registry.list('orders')).includes(handle.id), 5_000, 're-registration');
    expect(handle.state).toBe('registered');
    expect(registry.count('register')).toBe(2);
  });

  it('a deregistration that never answers cannot hold close() past deregisterTimeoutMs', async () => {
    const registry = scripted();
    const handle = await register({ registry, deregisterTimeoutMs: 200, callTimeoutMs: 10_000 });
    const errors: Error[] = [];
    handle.on('error', (e) => errors.push(e));
    registry.hangDeregister = Number.POSITIVE_INFINITY;
    await handle.close();
    expect(handle.state).toBe('closed');
    expect(errors).toHaveLength(1);
  });

  it('an unhealthy health function takes the instance out and recovery brings it back', async () => {
    const registry = scripted();
    let healthy = true;
    const handle = await register({ registry, health: () => healthy });
    const events: string[] = [];
    handle.on('unhealthy', (reason) => events.push(`unhealthy:${reason}`));
    handle.on('healthy', () => events.push('healthy'));
    healthy = false;
    await waitFor(async () => (await registry.list('orders')).length === 0, 3_000, 'instance out');
    expect(handle.state).toBe('unhealthy');
    expect(registry.calls.at(-1)).toMatchObject({ op: 'heartbeat', status: 'critical', note: 'health function returned false' });
    healthy = true;
    await waitFor(async () => (await registry.list('orders')).length === 1, 3_000, 'instance back');
    expect(handle.state).toBe('registered');
    expect(events).toEqual(['unhealthy:health function returned false', 'healthy']);
  });

  it('a health function that throws or hangs counts as unhealthy', async () => {
    const registry = scripted();
    let mode: 'throw' | 'hang' = 'throw';
    const handle = await register({
      registry,
      healthTimeoutMs: 50,
      health: () => {
        if (mode === 'throw') throw new Error('db down');
        return new Promise<boolean>(() => {});
      },
    });
    expect(handle.state).toBe('unhealthy');
    expect(await registry.list('orders')).toEqual([]);
    expect(registry.calls.find((c) => c.op === 'heartbeat')).toMatchObject({ status: 'critical', note: 'health function failed: db down' });
    mode = 'hang';
    await waitFor(() => registry.calls.some((c) => c.op === 'heartbeat' && /within 50 ms/.test(c.note ?? '')), 2_000, 'timeout note');
  });

  it('survives heartbeat failures, reporting them as error events', async () => {
    const registry = scripted();
    const handle = await register({ registry, check: { ttlMs: 1_000 }, heartbeatIntervalMs: 50 });
    const errors: Error[] = [];
    handle.on('error', (e) => errors.push(e));
    registry.failHeartbeat = 2;
    await waitFor(() => errors.length === 2, 2_000, 'two errors');
    const beats = registry.count('heartbeat');
    await waitFor(() => registry.count('heartbeat') > beats + 1, 2_000, 'heartbeats resume');
    expect(handle.state).toBe('registered');
    expect(ids(await registry.list('orders'))).toEqual([handle.id]);
  });

  it('deregister() leaves the registry and stops heartbeats; a failure is reported to the caller', async () => {
    const registry = scripted();
    const handle = await register({ registry, deregisterTimeoutMs: 200 });
    registry.failDeregister = Number.POSITIVE_INFINITY;
    await expect(handle.deregister()).rejects.toMatchObject({ code: 'PEERLB_REGISTRY_UNAVAILABLE' });
    expect(handle.state).toBe('deregistered');
    registry.failDeregister = 0;
    await handle.deregister();
    expect(await registry.list('orders')).toEqual([]);
    const beats = registry.count('heartbeat');
    await new Promise((r) => setTimeout(r, 250));
    expect(registry.count('heartbeat')).toBe(beats);
    await handle.close();
    expect(handle.state).toBe('closed');
    await expect(handle.deregister()).rejects.toMatchObject({ code: 'PEERLB_CLOSED' });
  });

  it('close() still closes when the registry cannot be told, reporting an error event', async () => {
    const registry = scripted();
    const handle = await register({ registry, deregisterTimeoutMs: 150 });
    const errors: Error[] = [];
    handle.on('error', (e) => errors.push(e));
    registry.failDeregister = Number.POSITIVE_INFINITY;
    await handle.close();
    expect(handle.state).toBe('closed');
    expect(errors.length).toBe(1);
  });

  it('works with an HTTP check against the instance its own server', async () => {
    let status = 200;
    const server = createServer((req, res) => {
      res.statusCode = req.url === '/ready' ? status : 404;
      res.end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const registry = new MemoryRegistry({ logger: silentLogger });
    registries.push(registry);
    const handle = await register({ registry, port, check: { http: { path: '/ready', intervalMs: 50 } } });
    await waitFor(async () => ids(await registry.list('orders')).includes(handle.id), 2_000, 'passing HTTP check');
    status = 503;
    await waitFor(async () => (await registry.list('orders')).length === 0, 2_000, 'failing HTTP check');
    // The registry forgetting an HTTP-checked instance is noticed too (heartbeat = presence check).
    status = 200;
    const lost = new Promise<void>((r) => handle.once('reregistered', () => r()));
    registry.reset();
    await lost;
    await waitFor(async () => ids(await registry.list('orders')).includes(handle.id), 2_000, 'back after reset');
  });
});

describe('registerService without a registry', () => {
  const saved = { dir: process.env.PEERLB_REGISTRY_DIR, consul: process.env.CONSUL_HTTP_ADDR };
  afterEach(() => {
    for (const [key, value] of [['PEERLB_REGISTRY_DIR', saved.dir], ['CONSUL_HTTP_ADDR', saved.consul]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('opens registryFromEnv() (here the local registry) and closes it with the handle', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const parent = await mkdtemp(join(tmpdir(), 'peerlb-registration-unit-'));
    try {
      process.env.PEERLB_REGISTRY_DIR = join(parent, 'registry');
      delete process.env.CONSUL_HTTP_ADDR;
      const handle = await registerService({ service: 'orders', port: 4000, logger: silentLogger, check: { ttlMs: 1_000 } });
      expect(handle.registry.kind).toBe('local');
      expect(ids(await handle.registry.list('orders'))).toEqual([handle.id]);
      await handle.close();
      await expect(handle.registry.list('orders')).rejects.toMatchObject({ code: 'PEERLB_CLOSED' });
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });
});
