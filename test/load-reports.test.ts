import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '@peerlb/client';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { LoadLab, runCaller, type CallerResult } from './fixtures/load-processes.js';
import { waitFor } from './support/wait.js';

let lab: LoadLab | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await lab?.close();
  lab = undefined;
});

async function instances(service: string, n: number, costMs: number): Promise<void> {
  for (let i = 0; i < n; i++) lab!.start({ service, costMs });
  await waitFor(async () => (await lab!.list(service)).length === n, 30_000, `${n} instances of ${service}`);
}

function shares(results: CallerResult[]): Map<string, number> {
  const total = new Map<string, number>();
  let all = 0;
  for (const r of results) {
    for (const [id, n] of Object.entries(r.counts)) {
      total.set(id, (total.get(id) ?? 0) + n);
      all += n;
    }
  }
  return new Map([...total].map(([id, n]) => [id, n / all]));
}

describe('load reports between real processes (issue 14)', () => {
  it('identical instances called one request at a time get near-equal shares, and their reports reach the caller', async () => {
    lab = await LoadLab.open();
    await instances('equal', 2, 0);
    const result = await runCaller(lab.dir, { service: 'equal', concurrency: 1, durationMs: 1500 });
    expect(result.errors).toBe(0);
    const byId = shares([result]);
    expect(byId.size).toBe(2);
    for (const share of byId.values()) {
      expect(share).toBeGreaterThan(0.3);
      expect(share).toBeLessThan(0.7);
    }
    for (const report of Object.values(result.reports)) {
      expect(report).not.toBeNull();
      expect(report!.utilization).toBeGreaterThanOrEqual(0);
      expect(report!.utilization).toBeLessThanOrEqual(1);
    }
  });

  it('several independent callers reacting to the same reports do not herd', async () => {
    lab = await LoadLab.open();
    await instances('herd', 3, 2);
    const results = await Promise.all(
      [0, 1, 2].map(() => runCaller(lab!.dir, { service: 'herd', concurrency: 4, durationMs: 3000, windowMs: 250 })),
    );
    for (const r of results) expect(r.errors).toBe(0);
    // Herding would show as windows in which one caller sends (nearly) everything to one instance.
    let windows = 0;
    let herded = 0;
    for (const r of results) {
      for (const w of r.windows) {
        const counts = Object.values(w ?? {});
        const total = counts.reduce((a, b) => a + b, 0);
        if (total < 12) continue;
        windows++;
        if (Math.max(...counts) / total > 0.8) herded++;
      }
    }
    expect(windows).toBeGreaterThan(10);
    expect(herded / windows).toBeLessThan(0.15);
    const byId = shares(results);
    expect(byId.size).toBe(3);
    for (const share of byId.values()) {
      expect(share).toBeGreaterThan(0.18);
      expect(share).toBeLessThan(0.5);
    }
  });

  it('a peer that other callers saturate gets less traffic, though this caller has not loaded it', async () => {
    lab = await LoadLab.open();
    await instances('busy', 2, 1);
    const [victim] = await lab.list('busy');
    const hammer = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/hammer.mjs', import.meta.url)), JSON.stringify({ port: victim!.port, concurrency: 3 })],
      { stdio: 'ignore' },
    );
    children.push(hammer);
    // Let the victim's event-loop window fill up.
    await new Promise((r) => setTimeout(r, 1200));
    const result = await runCaller(lab.dir, { service: 'busy', concurrency: 1, durationMs: 2000 });
    expect(result.errors).toBe(0);
    const share = shares([result]).get(victim!.id) ?? 0;
    // The same caller without reports sees only its own latencies (seen here: 0.18-0.21 vs 0.04-0.07).
    const blind = await runCaller(lab.dir, { service: 'busy', concurrency: 1, durationMs: 2000, loadReports: false });
    expect(share).toBeLessThan(0.2);
    expect(share).toBeLessThan(shares([blind]).get(victim!.id) ?? 0);
    expect(result.reports[victim!.id]!.utilization).toBeGreaterThan(0.5);
  });

  it('hostile report values are ignored, never crash a call', async () => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/hostile-reporter.mjs', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const servers = await new Promise<Array<{ name: string; port: number }>>((resolve) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]!) as Array<{ name: string; port: number }>);
      });
    });
    const registry = new MemoryRegistry({
      logger: silentLogger,
      instances: servers.map((s) => ({ id: s.name, service: 'hostile', address: '127.0.0.1', port: s.port, tags: [], meta: {} })),
    });
    const client = createClient({ registry, logger: silentLogger });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 120; i++) {
        const res = await client.request({ service: 'hostile', path: '/' });
        seen.add(await res.body.text());
      }
      expect(seen.size).toBe(servers.length);
      const peers = client.stats().services.hostile!.peers;
      for (const peer of peers) {
        if (peer.id === 'good') expect(peer.loadReport).toMatchObject({ utilization: 0.25, inflight: 1 });
        else expect(peer.loadReport, peer.id).toBeUndefined();
      }
    } finally {
      await client.close();
      await registry.close();
    }
  });
});
