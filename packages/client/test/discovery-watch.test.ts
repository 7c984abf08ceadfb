import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger, type ServiceInstance } from '@peerlb/registry';
import { ServiceWatch, type DiscoveryStatus } from '../src/discovery/index.js';
import { createClient, seededRandom, type Client, type StaleEvent } from '../src/index.js';
import { inst, ScriptedRegistry } from './support/fake-registry.js';
import { delay, startPeer, TestRegistry, waitFor, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function recordingWatch(rules: { maxStalenessMs: number; emptyGraceMs: number }) {
  const registry = new ScriptedRegistry();
  const lists: (readonly ServiceInstance[])[] = [];
  const statuses: DiscoveryStatus[] = [];
  const watch = new ServiceWatch(
    registry,
    'api',
    rules,
    { instances: (i) => lists.push(i), staleChanged: (s) => statuses.push(s) },
    silentLogger,
  );
  watch.start();
  cleanups.push(() => watch.close());
  return { registry, watch, lists, statuses };
}

describe('ServiceWatch', () => {
  it('opens one registry watch and hands on every list', () => {
    const { registry, watch, lists } = recordingWatch({ maxStalenessMs: 1000, emptyGraceMs: 0 });
    expect(registry.watchCalls).toBe(1);
    expect(watch.hasBeenSeen).toBe(false);
    registry.instances('api', [inst('a', 1)]);
    registry.instances('api', [inst('a', 1), inst('b', 2)]);
    expect(lists.map((l) => l.map((i) => i.id))).toEqual([['a'], ['a', 'b']]);
    expect(watch.hasBeenSeen).toBe(true);
    watch.close();
    expect(registry.openWatches).toBe(0);
  });

  it('serves the last list while the registry fails, marked stale, until maxStalenessMs', async () => {
    const { registry, watch, lists, statuses } = recordingWatch({ maxStalenessMs: 80, emptyGraceMs: 0 });
    registry.instances('api', [inst('a', 1)]);
    registry.fail('api', 'connection refused');
    expect(lists).toHaveLength(1);
    expect(watch.status()).toMatchObject({ stale: true, expired: false });
    expect(watch.status().lastError?.message).toBe('connection refused');
    // Repeated errors do not restart the staleness clock.
    registry.fail('api');
    await waitFor(() => watch.status().expired, 2000, 'expiry');
    expect(statuses.map((s) => [s.stale, s.expired])).toEqual([
      [true, false],
      [true, true],
    ]);
    registry.instances('api', [inst('a', 1)]);
    expect(watch.status()).toMatchObject({ stale: false, expired: false, lastError: undefined });
    expect(statuses.at(-1)).toMatchObject({ stale: false, expired: false });
  });

  it('holds back a sudden empty answer for the grace period', async () => {
    const { registry, watch, lists } = recordingWatch({ maxStalenessMs: 1000, emptyGraceMs: 60 });
    registry.instances('api', [inst('a', 1)]);
    registry.instances('api', []);
    expect(lists).toHaveLength(1);
    expect(watch.status().emptyPending).toBe(true);
    await waitFor(() => lists.length === 2, 2000, 'empty list applied');
    expect(lists[1]).toEqual([]);
    expect(watch.status().emptyPending).toBe(false);
  });

  it('drops a held-back empty answer when a non-empty one follows', async () => {
    const { registry, lists } = recordingWatch({ maxStalenessMs: 1000, emptyGraceMs: 50 });
    registry.instances('api', [inst('a', 1)]);
    registry.instances('api', []);
    registry.instances('api', [inst('a', 1), inst('b', 2)]);
    await delay(100);
    expect(lists.map((l) => l.length)).toEqual([1, 2]);
  });

  it('applies an empty answer at once when a second one confirms it', () => {
    const { registry, lists } = recordingWatch({ maxStalenessMs: 1000, emptyGraceMs: 10_000 });
    registry.instances('api', [inst('a', 1)]);
    registry.instances('api', []);
    registry.fail('api');
    registry.instances('api', []);
    expect(lists.map((l) => l.length)).toEqual([1, 0]);
  });

  it('accepts an empty first answer at once (nothing to protect)', () => {
    const { registry, lists, watch } = recordingWatch({ maxStalenessMs: 1000, emptyGraceMs: 10_000 });
    registry.instances('api', []);
    expect(lists).toEqual([[]]);
    expect(watch.hasBeenSeen).toBe(true);
  });

  it('wakes waiters on the first answer and honours their signal', async () => {
    const { registry, watch } = recordingWatch({ maxStalenessMs: 1000, emptyGraceMs: 0 });
    const aborted = new AbortController();
    const first = watch.waitUntilSeen(new AbortController().signal);
    const second = watch.waitUntilSeen(aborted.signal);
    aborted.abort();
    await expect(second).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    registry.instances('api', [inst('a', 1)]);
    await expect(first).resolves.toBeUndefined();
  });
});

describe('discovery through the client', () => {
  async function peers(n: number): Promise<TestPeer[]> {
    const out: TestPeer[] = [];
    for (let i = 0; i < n; i++) {
      const p = await startPeer(`api-${i}`);
      cleanups.push(() => p.close());
      out.push(p);
    }
    return out;
  }

  it('sees a registry change within 1 s, with one watch and no registry call per request', async () => {
    const registry = new TestRegistry();
    let watches = 0;
    let lists = 0;
    const watch = registry.watch.bind(registry);
    const list = registry.list.bind(registry);
    registry.watch = (...args) => {
      watches++;
      return watch(...args);
    };
    registry.list = (...args) => {
      lists++;
      return list(...args);
    };
    const [a, b] = await peers(2);
    await registry.add('api', a!);
    const client = createClient({ registry, random: seededRandom(1) });
    cleanups.push(() => client.close(), () => registry.close());
    const burst = async (n: number) => {
      const ids = new Set<string>();
      await Promise.all(
        Array.from({ length: n }, async () => {
          const res = await client.request({ service: 'api', path: '/' });
          await res.body.dump();
          ids.add(res.peer.id);
        }),
      );
      return ids;
    };
    expect([...(await burst(20))]).toEqual(['api-0']);
    await registry.add('api', b!);
    const changedAt = Date.now();
    await waitFor(() => client.stats().services.api!.peers.length === 2, 1000, 'the new peer');
    expect(Date.now() - changedAt).toBeLessThan(1000);
    expect((await burst(40)).has('api-1')).toBe(true);
    expect(watches).toBe(1);
    expect(lists).toBe(0);
  });

  it('keeps serving the cached list through a registry outage, and reports it stale', async () => {
    const registry = new ScriptedRegistry();
    const [a] = await peers(1);
    const client: Client = createClient({ registry, logger: silentLogger, discovery: { maxStalenessMs: 60_000 } });
    cleanups.push(() => client.close());
    const stale: StaleEvent[] = [];
    client.on('stale', (e) => stale.push(e));
    const first = client.request({ service: 'api', path: '/' });
    await waitFor(() => registry.openWatches === 1);
    registry.instances('api', [inst('api-0', a!.port)]);
    await (await first).body.dump();
    registry.fail('api', 'consul unreachable');
    for (let i = 0; i < 5; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    const stats = client.stats().services.api!;
    expect(stats).toMatchObject({ stale: true, expired: false, lastError: 'consul unreachable' });
    expect(stats.staleSince).toBeTypeOf('number');
    expect(stale).toEqual([{ service: 'api', stale: true, expired: false, error: expect.any(Error) }]);
    registry.instances('api', [inst('api-0', a!.port)]);
    expect(client.stats().services.api!.stale).toBe(false);
    expect(stale.at(-1)).toMatchObject({ stale: false, expired: false });
  });

  it('stops serving a stale list after maxStalenessMs: PEERLB_NO_PEERS with the registry error as cause', async () => {
    const registry = new ScriptedRegistry();
    const [a] = await peers(1);
    const client = createClient({ registry, logger: silentLogger, discovery: { maxStalenessMs: 50 } });
    cleanups.push(() => client.close());
    const first = client.request({ service: 'api', path: '/' });
    await waitFor(() => registry.openWatches === 1);
    registry.instances('api', [inst('api-0', a!.port)]);
    await (await first).body.dump();
    registry.fail('api', 'consul unreachable');
    await waitFor(() => client.stats().services.api!.expired, 2000, 'expiry');
    const err = await client.request({ service: 'api', path: '/' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PEERLB_NO_PEERS', reason: 'registry-unavailable' });
    expect(((err as Error).cause as Error).message).toBe('consul unreachable');
    registry.instances('api', [inst('api-0', a!.port)]);
    const res = await client.request({ service: 'api', path: '/' });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
  });

  it('keeps the peers through a sudden empty answer during the grace period', async () => {
    const registry = new ScriptedRegistry();
    const [a] = await peers(1);
    const client = createClient({ registry, logger: silentLogger, discovery: { emptyGraceMs: 10_000 } });
    cleanups.push(() => client.close());
    const first = client.request({ service: 'api', path: '/' });
    await waitFor(() => registry.openWatches === 1);
    registry.instances('api', [inst('api-0', a!.port)]);
    await (await first).body.dump();
    registry.instances('api', []);
    const res = await client.request({ service: 'api', path: '/' });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(client.stats().services.api!.emptyPending).toBe(true);
  });

  it('a request waiting for a first answer is served as soon as it comes', async () => {
    const registry = new ScriptedRegistry();
    const [a] = await peers(1);
    const client = createClient({ registry });
    cleanups.push(() => client.close());
    const pending = client.request({ service: 'api', path: '/', timeoutMs: 5000 });
    await delay(30);
    registry.fail('api', 'not yet');
    registry.instances('api', [inst('api-0', a!.port)]);
    const res = await pending;
    await res.body.dump();
    expect(res.peer.id).toBe('api-0');
  });

  it('a request waiting for a first answer fails at its deadline with the registry error as cause', async () => {
    const registry = new ScriptedRegistry();
    const client = createClient({ registry });
    cleanups.push(() => client.close());
    const pending = client.request({ service: 'api', path: '/', timeoutMs: 100 }).catch((e: unknown) => e);
    await waitFor(() => registry.openWatches === 1);
    registry.fail('api', 'consul unreachable');
    const err = await pending;
    expect(err).toMatchObject({ code: 'PEERLB_NO_PEERS', reason: 'no-answer' });
    expect(((err as Error).cause as Error).message).toBe('consul unreachable');
  });
});
