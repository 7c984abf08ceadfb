import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startConsulDouble, type ConsulDouble } from '../../../test/support/consul-double.js';
import { ConsulRegistry, NotRegisteredError, RegistryAuthError, type ServiceInstance, type WatchUpdate } from '../src/index.js';
import { startHealthServer, type HealthServer } from '../src/testkit/health-server.js';
import { waitUntil } from './consul-stub.js';

// End-to-end checks of ConsulRegistry against the Consul agent double (ACLs on). The shared
// conformance suite covers the contract; these pin the Consul-specific paths: ACL token, TTL
// and HTTP-only heartbeats across an agent restart, and a watch riding out an agent outage.

const TOKEN = 'a1b2c3d4-double-management-token';
let double: ConsulDouble;
let health: HealthServer;
const registries: ConsulRegistry[] = [];

beforeAll(async () => {
  double = await startConsulDouble({ token: TOKEN, minCheckIntervalMs: 50, reapIntervalMs: 50 });
  health = await startHealthServer();
});
afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await double.close();
  await health.close();
});

function open(token = TOKEN): ConsulRegistry {
  const registry = new ConsulRegistry({
    address: double.url,
    token,
    env: {},
    logger: { warn() {} },
    waitMs: 10_000,
    backoff: { minMs: 50, maxMs: 200 },
  });
  registries.push(registry);
  return registry;
}

function watchIds(registry: ConsulRegistry, service: string) {
  const updates: WatchUpdate[] = [];
  const handle = registry.watch(service, (u) => updates.push(u));
  const latest = (): string[] | undefined => {
    for (let i = updates.length - 1; i >= 0; i--) {
      const u = updates[i]!;
      if (u.ok) return u.instances.map((x: ServiceInstance) => x.id);
    }
    return undefined;
  };
  return { updates, handle, latest };
}

let serial = 0;
const uniqueService = () => `dbl-${process.pid}-${++serial}`;

describe('ConsulRegistry on the Consul agent double', () => {
  it('registers with a TTL check, heartbeats, and a watcher sees the instance with its data', async () => {
    const service = uniqueService();
    const [writer, reader] = [open(), open()];
    const watch = watchIds(reader, service);
    await waitUntil(() => watch.latest()?.length === 0, 3_000, 'the initial empty set');
    await writer.register({ id: `${service}-1`, service, address: '127.0.0.1', port: health.port, tags: ['t'], meta: { k: 'v' } }, { ttlMs: 5_000 });
    expect(await reader.list(service)).toEqual([]); // the TTL check starts critical
    await writer.heartbeat(`${service}-1`);
    await waitUntil(() => watch.latest()?.includes(`${service}-1`) === true, 3_000, 'the instance');
    expect(await reader.list(service)).toEqual([
      { id: `${service}-1`, service, address: '127.0.0.1', port: health.port, tags: ['t'], meta: { k: 'v' } },
    ]);
    // The watch settles into one held blocking query, not a poll.
    await waitUntil(() => double.blockingQueries() >= 1, 3_000, 'a held blocking query');
  });

  it('runs an HTTP-only check through the agent, and heartbeats verify the service exists', async () => {
    const service = uniqueService();
    const registry = open();
    const watch = watchIds(registry, service);
    await registry.register(
      { id: `${service}-1`, service, address: '127.0.0.1', port: health.port },
      { http: { path: '/health', intervalMs: 100, timeoutMs: 500 } },
    );
    await waitUntil(() => watch.latest()?.includes(`${service}-1`) === true, 3_000, 'the HTTP check to pass');
    await registry.heartbeat(`${service}-1`);
    await registry.deregister(`${service}-1`);
    await expect(registry.heartbeat(`${service}-1`)).rejects.toBeInstanceOf(NotRegisteredError);
    await waitUntil(() => watch.latest()?.length === 0, 3_000, 'removal after deregister');
  });

  it('after an agent restart, heartbeats throw NotRegisteredError and the watcher recovers', async () => {
    const service = uniqueService();
    const [writer, reader] = [open(), open()];
    const inst = { id: `${service}-1`, service, address: '127.0.0.1', port: health.port };
    const httpOnly = { id: `${service}-2`, service, address: '127.0.0.1', port: health.port };
    await writer.register(inst, { ttlMs: 10_000 });
    await writer.register(httpOnly, { http: { intervalMs: 100 } });
    await writer.heartbeat(inst.id);
    const watch = watchIds(reader, service);
    await waitUntil(() => watch.latest()?.length === 2, 3_000, 'both instances');

    await double.restart();
    await expect(writer.heartbeat(inst.id)).rejects.toBeInstanceOf(NotRegisteredError);
    await expect(writer.heartbeat(httpOnly.id)).rejects.toBeInstanceOf(NotRegisteredError);
    await waitUntil(() => watch.latest()?.length === 0, 5_000, 'the forgotten instances to disappear');

    await writer.register(inst, { ttlMs: 10_000 });
    await writer.heartbeat(inst.id);
    await waitUntil(() => watch.latest()?.join() === inst.id, 5_000, 'the re-registered instance');
  });

  it('reports an agent outage to the watcher and resumes when it is back', async () => {
    const service = uniqueService();
    const registry = open();
    await registry.register({ id: `${service}-1`, service, address: '127.0.0.1', port: health.port }, { ttlMs: 30_000 });
    await registry.heartbeat(`${service}-1`);
    const watch = watchIds(registry, service);
    await waitUntil(() => watch.latest()?.length === 1, 3_000, 'the instance');
    await double.stop();
    try {
      await waitUntil(() => watch.updates.some((u) => !u.ok), 3_000, 'an error update');
    } finally {
      await double.start();
    }
    const errorsAt = watch.updates.length;
    await waitUntil(() => watch.updates.slice(errorsAt).some((u) => u.ok), 3_000, 'recovery');
    expect(watch.latest()).toEqual([`${service}-1`]);
  });

  it('maps a refused token to RegistryAuthError and never shows it', async () => {
    const wrong = 'ffffffff-wrong-token-0000';
    const registry = open(wrong);
    const err = await registry.list('anything').then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err!.message).not.toContain(wrong);
  });
});
