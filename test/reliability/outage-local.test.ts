import { rename, rm, writeFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { openBackend, type Backend } from './support/backends.js';
import { MODE, reportFigures } from './support/mode.js';
import { startOutageInstances, startOutageLoad } from './support/outage.js';
import { killAll, sleep, waitFor } from './support/processes.js';

// The local registry's directory becomes unusable under load, then comes back; later it is removed
// outright. "Unreadable" is done by moving the directory away and putting a plain file at its
// path: the tests run as root here, and root reads a chmod 000 directory anyway, so a permission
// change would prove nothing. Every reader then fails on the path (not a directory), which is what
// an unreadable directory does to it.
describe('local registry directory unusable, then removed, under load', () => {
  let backend: Backend | undefined;
  afterAll(async () => {
    await killAll();
    await backend?.close();
  });

  it(
    'no request fails; stale while unusable; instances re-register after the removal',
    async () => {
      backend = await openBackend('local');
      const dir = (backend.ref as { dir: string }).dir;
      const service = 'outage-local';
      const instances = await startOutageInstances(backend, service, 10_000);
      const load = await startOutageLoad(backend, service);
      const stats = () => load.stats();
      await waitFor(async () => (await stats())?.eligiblePeers === 3, 10_000, 'the client to see the three instances');

      // 1. Unusable: the path is a file for MODE.outageMs.
      const away = `${dir}.away`;
      const brokenAt = Date.now();
      await rename(dir, away);
      await writeFile(dir, 'not a directory\n', { mode: 0o600 });
      await waitFor(async () => (await stats())?.stale === true, 15_000, 'the client to report its cache stale');
      await sleep(Math.max(0, MODE.outageMs - (Date.now() - brokenAt)));
      const during = await stats();
      await rm(dir);
      await rename(away, dir);
      const restoredAt = Date.now();
      await waitFor(async () => (await stats())?.stale === false, 15_000, 'the client to leave the stale state');
      await waitFor(async () => (await stats())?.eligiblePeers === 3, 20_000, 'the three instances to be back');

      // 2. Removed: readers make an empty directory again; the instances notice they were
      // forgotten and register again, while the client holds its list through the empty answer.
      const lostBefore = instances.map((i) => i.events.filter((e) => e === 'reregistered').length);
      await rm(dir, { recursive: true, force: true });
      await waitFor(
        () => instances.every((inst, i) => inst.events.filter((e) => e === 'reregistered').length > lostBefore[i]!),
        20_000,
        'every instance to register again',
        () => JSON.stringify(instances.map((i) => i.events)),
      );
      await waitFor(async () => (await stats())?.eligiblePeers === 3, 20_000, 'the three instances to be back');
      await sleep(1_000);
      load.stop();
      const report = await load.done;

      reportFigures('outage/local', {
        unusableMs: restoredAt - brokenAt,
        requests: report.sent,
        failed: report.get.failed + report.post.failed,
        staleEvents: report.staleEvents,
        reregistrations: instances.map((i) => i.events.filter((e) => e === 'reregistered').length),
        leaked: report.leaked,
      });
      const context = JSON.stringify({ get: report.get, post: report.post, warnings: report.warnings });
      expect(report.get.ok, context).toBeGreaterThan(50);
      expect(report.get.failures, context).toEqual([]);
      expect(report.post.failures, context).toEqual([]);
      expect(during?.stale).toBe(true);
      expect(during?.eligiblePeers).toBe(3);
      expect(during?.lastError).toMatch(/not a directory/);
      expect(report.leaked).toEqual({});
    },
    MODE.testTimeoutMs(MODE.outageMs + 30_000),
  );
});
