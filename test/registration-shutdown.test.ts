import { describe, expect, it } from 'vitest';
import { accepts, get, registrationSuite, waitFor, type BackendName } from './fixtures/registration-harness.js';

// Instances in their own processes against a registry shared with this process: how they appear,
// how they leave on SIGTERM, on SIGKILL and on a crash.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A request's outcome, settled at once so no rejection waits unobserved while the test goes on. */
function outcome(request: Promise<string>): Promise<{ ok: true } | { ok: false; error: string }> {
  return request.then(
    () => ({ ok: true as const }),
    (err: unknown) => ({ ok: false as const, error: String(err) }),
  );
}

describe.each<BackendName>(['local', 'consul', 'consul-cluster'])('instance processes on the %s registry', (name) => {
  const suite = registrationSuite(name, 'svc');

  it('SIGTERM: deregistered before the port closes, in-flight and late requests all answered, exit 0', async () => {
    const { instance, id, port, url, watch, context } = await suite.launch({ drainMs: 1_500 });
    const inflight = Array.from({ length: 5 }, () => outcome(get(`${url}/slow?delay=700`)));
    await sleep(100);
    instance.kill('SIGTERM');

    let closedAt: number | undefined;
    const portWatch = (async () => {
      while (await accepts(port)) await sleep(10);
      closedAt = Date.now();
    })();
    await waitFor(() => watch.removedAt(id) !== undefined, 8_000, 'the watcher to see the removal', context);
    // Callers that have not noticed the removal yet keep sending for a while: still served.
    const late: Array<ReturnType<typeof outcome>> = [];
    for (let i = 0; i < 5; i++) {
      late.push(outcome(get(`${url}/late`)));
      await sleep(30);
    }
    const results = await Promise.all([...inflight, ...late]);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    await portWatch;
    expect(watch.removedAt(id)!).toBeLessThan(closedAt!);
    expect(await instance.exited).toEqual({ code: 0, signal: null });
    const names = instance.names();
    expect(names.indexOf('draining')).toBeLessThan(names.indexOf('deregistered'));
    expect(names.indexOf('deregistered')).toBeLessThan(names.indexOf('closed'));
    expect(await suite.backend.holds(id)).toBe(false);
  });

  it('a second signal during the drain exits at once, non-zero', async () => {
    const { instance, id, context } = await suite.launch({ drainMs: 30_000 });
    instance.kill('SIGTERM');
    await waitFor(() => instance.names().includes('deregistered'), 8_000, 'deregistration', context);
    // A repeat within 500 ms of the first counts as the same keypress (package runners forward it).
    await sleep(600);
    instance.kill('SIGTERM');
    const exit = await Promise.race([instance.exited, sleep(5_000).then(() => 'still running' as const)]);
    expect(exit).toEqual({ code: 143, signal: null });
    expect(await suite.backend.holds(id)).toBe(false);
  });

  it.each([
    ['TTL', { ttlMs: 600, deregisterCriticalAfterMs: 10_000 }],
    ['HTTP', { http: { intervalMs: 200, timeoutMs: 200 }, deregisterCriticalAfterMs: 10_000 }],
  ] as const)('SIGKILL: leaves the healthy set once its %s check fails', async (_kind, check) => {
    const { instance, id, watch, context } = await suite.launch({ check });
    instance.kill('SIGKILL');
    expect((await instance.exited).signal).toBe('SIGKILL');
    await waitFor(() => !watch.has(id), 8_000, 'the killed instance to leave the healthy set', context);
  });

  it.each(['throw', 'reject'] as const)('a crash (%s) deregisters before exiting non-zero', async (crash) => {
    // A TTL far longer than the test: only the deregistration can explain the removal.
    const { instance, id, watch, context } = await suite.launch({ check: { ttlMs: 60_000 } });
    instance.send({ crash });
    const exit = await instance.exited;
    expect(exit.code).toBe(1);
    expect(instance.stderr).toMatch(crash === 'throw' ? /uncaughtException: Error: fixture crash/ : /unhandledRejection: Error: fixture rejection/);
    expect(await suite.backend.holds(id)).toBe(false);
    await waitFor(() => !watch.has(id), 8_000, 'the watcher to see the removal', context);
  });
});
