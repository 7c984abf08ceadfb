import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LoadLab } from './fixtures/load-processes.js';
import { waitFor } from './support/wait.js';

let lab: LoadLab | undefined;
afterEach(async () => {
  await lab?.close();
  lab = undefined;
});

function get(url: string): Promise<{ body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, signal: AbortSignal.timeout(10_000) }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('startService({ workers }) (issue 14)', () => {
  it('each worker is its own instance on its own port, reports its own load, and a dead one is restarted', async () => {
    lab = await LoadLab.open();
    const primary = lab.start({ service: 'clustered', workers: 2 });
    await lab.ready(primary);
    const instances = await lab.list('clustered');
    expect(instances).toHaveLength(2);
    expect(new Set(instances.map((i) => i.port)).size).toBe(2);
    expect(instances.map((i) => i.meta.worker).sort()).toEqual(['0', '1']);
    for (const instance of instances) {
      expect(instance.meta.host).toBeTruthy();
      const answer = await get(`http://127.0.0.1:${instance.port}/`);
      expect(answer.body).toBe(instance.meta.pid);
      expect(String(answer.headers['endpoint-load-metrics'])).toMatch(/^TEXT application_utilization=/);
    }

    const victim = instances.find((i) => i.meta.worker === '0')!;
    process.kill(Number(victim.meta.pid), 'SIGKILL');
    await waitFor(
      async () => (await lab!.list('clustered')).some((i) => i.meta.worker === '0' && i.meta.pid !== victim.meta.pid),
      20_000,
      'worker 0 restarted and registered',
    );
    expect(primary.lines.some((l) => l.event === 'worker-restart')).toBe(true);
    const restarted = (await lab.list('clustered')).find((i) => i.meta.worker === '0' && i.meta.pid !== victim.meta.pid)!;
    expect((await get(`http://127.0.0.1:${restarted.port}/`)).body).toBe(restarted.meta.pid);
  });

  it('SIGTERM drains every worker the drain-first way, then the primary exits 0', async () => {
    lab = await LoadLab.open();
    const primary = lab.start({ service: 'drained', workers: 2, drainMs: 500 });
    await lab.ready(primary);
    const before = await lab.list('drained');
    expect(before).toHaveLength(2);
    primary.child.kill('SIGTERM');
    // Deregistered first, while still answering during the drain window.
    await waitFor(async () => (await lab!.list('drained')).length === 0, 10_000, 'workers deregistered');
    const exit = await primary.exited;
    expect(exit.code).toBe(0);
    expect(primary.lines.some((l) => l.event === 'worker-restart')).toBe(false);
  });

  it('a second signal exits at once', async () => {
    lab = await LoadLab.open();
    const primary = lab.start({ service: 'hurried', workers: 2, drainMs: 30_000 });
    await lab.ready(primary);
    primary.child.kill('SIGTERM');
    // Past the window in which a repeat is taken for the same keypress.
    await new Promise((r) => setTimeout(r, 800));
    const second = Date.now();
    primary.child.kill('SIGTERM');
    const exit = await primary.exited;
    expect(Date.now() - second).toBeLessThan(5_000);
    expect(exit.code).toBe(143);
  });
});
