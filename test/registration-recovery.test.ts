import { describe, expect, it } from 'vitest';
import { registrationSuite, waitFor, type BackendName } from './fixtures/registration-harness.js';

// Instances in their own processes that the registry loses (restart) or that report themselves
// unhealthy, and how they come back.

const CHECKS = [
  ['TTL', { ttlMs: 600, deregisterCriticalAfterMs: 10_000 }],
  ['HTTP', { http: { intervalMs: 200, timeoutMs: 200 }, deregisterCriticalAfterMs: 10_000 }],
] as const;

describe.each<BackendName>(['local', 'consul', 'consul-cluster'])('recovery on the %s registry', (name) => {
  const suite = registrationSuite(name, 'rec');

  it.each(CHECKS)('a registry restart is followed by re-registration (%s check)', async (_kind, check) => {
    const { instance, id, watch, context } = await suite.launch({ check });
    await suite.backend.restart();
    // A cluster's client agent answers as soon as it is back, and the instance may register again
    // before this line runs; the 'lost' event below proves the registry forgot it there.
    if (name !== 'consul-cluster') expect(await suite.backend.holds(id)).toBe(false);
    await waitFor(() => instance.names().includes('reregistered'), 8_000, 'the reregistered event', context);
    const names = instance.names();
    expect(names.indexOf('lost')).toBeGreaterThanOrEqual(0);
    expect(names.indexOf('lost')).toBeLessThan(names.indexOf('reregistered'));
    expect(instance.events.find((e) => e.name === 'lost')?.detail).toMatchObject({ code: 'PEERLB_NOT_REGISTERED' });
    expect(await suite.backend.holds(id)).toBe(true);
    await waitFor(() => watch.has(id), 8_000, 'the watcher to see the instance again', context);
  });

  it.each(CHECKS)('an unhealthy health function takes the instance out; recovery brings it back (%s check)', async (_kind, check) => {
    const { instance, id, watch, context } = await suite.launch({ check });
    instance.send({ health: false });
    await waitFor(() => !watch.has(id), 8_000, 'the unhealthy instance to leave the healthy set', context);
    // Out of the healthy set, but still registered: recovery needs no new registration.
    expect(await suite.backend.holds(id)).toBe(true);
    await waitFor(() => instance.names().includes('unhealthy'), 2_000, 'the unhealthy event', context);
    instance.send({ health: true });
    await waitFor(() => watch.has(id), 8_000, 'the recovered instance to come back', context);
    await waitFor(() => instance.names().includes('healthy'), 2_000, 'the healthy event', context);
    expect(instance.names()).not.toContain('reregistered');
  });
});
