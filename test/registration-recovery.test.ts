import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  openBackend,
  spawnInstance,
  waitFor,
  WatchRecorder,
  type Backend,
  type BackendName,
  type InstanceConfig,
  type InstanceProcess,
} from './fixtures/registration-harness.js';

const ctx = (watch: WatchRecorder, instance: InstanceProcess) => () => `watch=${watch.describe()} instance=${instance.describe()}`;

// Instances in their own processes that the registry loses (restart) or that report themselves
// unhealthy, and how they come back.

const CHECKS = [
  ['TTL', { ttlMs: 600, deregisterCriticalAfterMs: 10_000 }],
  ['HTTP', { http: { intervalMs: 200, timeoutMs: 200 }, deregisterCriticalAfterMs: 10_000 }],
] as const;

describe.each<BackendName>(['local', 'consul'])('recovery on the %s registry', (name) => {
  let backend: Backend;
  const running: InstanceProcess[] = [];
  const watches: WatchRecorder[] = [];
  let serial = 0;

  beforeAll(async () => {
    backend = await openBackend(name);
  });
  afterEach(async () => {
    watches.splice(0).forEach((w) => w.close());
    await Promise.all(running.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await backend.teardown();
  });

  async function launch(config: Omit<InstanceConfig, 'service'>): Promise<{ instance: InstanceProcess; id: string; watch: WatchRecorder }> {
    serial++;
    const service = `rec-${name}-${serial}`;
    const watch = new WatchRecorder(backend.open(), service);
    watches.push(watch);
    const instance = spawnInstance(backend, { service, useDefaultRegistry: true, ...config });
    running.push(instance);
    const ready = await instance.ready;
    await waitFor(() => watch.has(ready.id), 8_000, `the watcher to see ${ready.id}`, ctx(watch, instance));
    return { instance, id: ready.id, watch };
  }

  it.each(CHECKS)('a registry restart is followed by re-registration (%s check)', async (_kind, check) => {
    const { instance, id, watch } = await launch({ check });
    await backend.restart();
    expect(await backend.holds(id)).toBe(false);
    await waitFor(() => instance.names().includes('reregistered'), 8_000, 'the reregistered event', ctx(watch, instance));
    const names = instance.names();
    expect(names.indexOf('lost')).toBeGreaterThanOrEqual(0);
    expect(names.indexOf('lost')).toBeLessThan(names.indexOf('reregistered'));
    expect(instance.events.find((e) => e.name === 'lost')?.detail).toMatchObject({ code: 'PEERLB_NOT_REGISTERED' });
    expect(await backend.holds(id)).toBe(true);
    await waitFor(() => watch.has(id), 8_000, 'the watcher to see the instance again', ctx(watch, instance));
  });

  it.each(CHECKS)('an unhealthy health function takes the instance out; recovery brings it back (%s check)', async (_kind, check) => {
    const { instance, id, watch } = await launch({ check });
    instance.send({ health: false });
    await waitFor(() => !watch.has(id), 8_000, 'the unhealthy instance to leave the healthy set', ctx(watch, instance));
    // Out of the healthy set, but still registered: recovery needs no new registration.
    expect(await backend.holds(id)).toBe(true);
    await waitFor(() => instance.names().includes('unhealthy'), 2_000, 'the unhealthy event', ctx(watch, instance));
    instance.send({ health: true });
    await waitFor(() => watch.has(id), 8_000, 'the recovered instance to come back', ctx(watch, instance));
    await waitFor(() => instance.names().includes('healthy'), 2_000, 'the healthy event', ctx(watch, instance));
    expect(instance.names()).not.toContain('reregistered');
  });
});
