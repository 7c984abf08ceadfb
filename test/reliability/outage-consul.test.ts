import { afterAll, describe, expect, it } from 'vitest';
import { ConsulRegistry, silentLogger, type WatchHandle } from '@peerlb/registry';
import { openBackend, type Backend } from './support/backends.js';
import { MODE, reportFigures } from './support/mode.js';
import { startOutageInstances, startOutageLoad } from './support/outage.js';
import { killAll, sleep, waitFor } from './support/processes.js';

/** Every update one watch delivered, with the time it arrived. */
class WatchLog {
  readonly updates: Array<{ at: number; ok: boolean; ids: string[] }> = [];
  private readonly handle: WatchHandle;

  constructor(
    readonly registry: ConsulRegistry,
    service: string,
  ) {
    this.handle = registry.watch(service, (u) =>
      this.updates.push({ at: Date.now(), ok: u.ok, ids: u.ok ? u.instances.map((i) => i.id) : [] }),
    );
  }

  errorsBetween(from: number, to: number): number[] {
    return this.updates.filter((u) => !u.ok && u.at >= from && u.at <= to).map((u) => u.at);
  }

  okAfter(at: number): boolean {
    return this.updates.some((u) => u.ok && u.at > at && u.ids.length > 0);
  }

  close(): void {
    this.handle.close();
  }
}

// The Consul agent (its test double) goes away under load: MODE.outageMs (30 s in soak mode, a few
// seconds in CI), then comes back with its state. Instances are real processes registered with it;
// the load comes from a client in its own process.
describe('Consul outage under load', () => {
  let backend: Backend | undefined;
  const logs: WatchLog[] = [];
  afterAll(async () => {
    for (const log of logs) {
      log.close();
      await log.registry.close();
    }
    await killAll();
    await backend?.close();
  });

  it(
    'no request fails, the cache is reported stale, the watch comes back after backoff with jitter',
    async () => {
      backend = await openBackend('consul');
      const double = backend.double!;
      const service = 'outage-consul';
      await startOutageInstances(backend, service, 120_000);

      // Two plain watches with a short backoff floor: how often they retry while the agent is down,
      // and whether their retries are spread (jitter) rather than in lockstep.
      for (let i = 0; i < 2; i++) {
        const registry = new ConsulRegistry({
          address: double.url,
          waitMs: 5_000,
          minWatchIntervalMs: 10,
          backoff: { minMs: 20, maxMs: 2_000 },
          logger: silentLogger,
          env: {},
        });
        logs.push(new WatchLog(registry, service));
      }

      const load = await startOutageLoad(backend, service);
      await waitFor(() => logs.every((l) => l.okAfter(0)), 10_000, 'the watches to see the instances');

      const downAt = Date.now();
      await double.stop();
      await waitFor(async () => (await load.stats())?.stale === true, 15_000, 'the client to report its cache stale');
      await sleep(Math.max(0, MODE.outageMs - (Date.now() - downAt)));
      const during = await load.stats();
      const upAt = Date.now();
      await double.start();
      await waitFor(async () => (await load.stats())?.stale === false, 20_000, 'the client to leave the stale state');
      await waitFor(() => logs.every((l) => l.okAfter(upAt)), 20_000, 'the watches to resume');
      await sleep(1_000);
      load.stop();
      const report = await load.done;

      const errors = logs.map((l) => l.errorsBetween(downAt, upAt));
      reportFigures('outage/consul', {
        outageMs: upAt - downAt,
        requests: report.sent,
        failed: report.get.failed + report.post.failed,
        staleEvents: report.staleEvents,
        watchRetriesDuringOutage: errors.map((e) => e.length),
        leaked: report.leaked,
      });
      const context = JSON.stringify({ get: report.get, post: report.post, warnings: report.warnings });
      expect(report.get.ok, context).toBeGreaterThan(50);
      expect(report.get.failures, context).toEqual([]);
      expect(report.post.failures, context).toEqual([]);
      expect(during?.stale).toBe(true);
      expect(during?.eligiblePeers).toBe(3);
      expect(report.staleEvents).toBeGreaterThanOrEqual(1);
      expect(report.leaked).toEqual({});

      for (const times of errors) {
        expect(times.length).toBeGreaterThanOrEqual(2);
        // A 20 ms floor without backoff would retry 50 to 100 times a second; doubling up to a 2 s cap
        // (about one retry a second once capped, on average) stays far below 2 a second.
        expect(times.length).toBeLessThanOrEqual(12 + 2 * Math.ceil((upAt - downAt) / 1_000));
        // The waits grow: the last ones are longer than the first ones.
        const gaps = times.slice(1).map((t, i) => t - times[i]!);
        const firstGaps = gaps.slice(0, 2);
        const lastGaps = gaps.slice(-2);
        expect(avg(lastGaps)).toBeGreaterThan(avg(firstGaps));
      }
      // Both watches lost the agent at the same instant; with jitter their retries drift apart.
      const [a, b] = errors as [number[], number[]];
      const drift = a.slice(0, Math.min(a.length, b.length)).map((t, i) => Math.abs(t - b[i]!));
      expect(Math.max(...drift), JSON.stringify({ a, b })).toBeGreaterThan(30);
    },
    MODE.testTimeoutMs(MODE.outageMs + 30_000),
  );
});

function avg(values: number[]): number {
  return values.reduce((s, v) => s + v, 0) / Math.max(1, values.length);
}
