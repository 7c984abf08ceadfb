import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  openBackend,
  spawnInstance,
  waitFor,
  WatchRecorder,
  type Backend,
  type InstanceProcess,
} from './fixtures/registration-harness.js';

// Ten instances started at the same moment on one port range: portfinder can hand two of them
// the same port; listen's EADDRINUSE must send the loser searching again, never into a crash.

const COUNT = 10;

function bind(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '0.0.0.0', () => resolve(s));
  });
}

/** COUNT + 2 consecutive ports below the ephemeral range, all free right now. */
async function freeRange(size: number): Promise<{ start: number; end: number }> {
  for (let tries = 0; tries < 50; tries++) {
    const start = 20_000 + Math.floor(Math.random() * 10_000);
    const held: Server[] = [];
    try {
      for (let p = start; p < start + size; p++) held.push(await bind(p));
      return { start, end: start + size - 1 };
    } catch {
      // taken; try elsewhere
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error('no free port range');
}

describe('parallel starts on one port range', () => {
  let backend: Backend;
  const running: InstanceProcess[] = [];

  beforeAll(async () => {
    backend = await openBackend('local');
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()));
  });
  afterAll(async () => {
    await backend.teardown();
  });

  it(`${COUNT} instances never collide and all register`, async () => {
    const range = await freeRange(COUNT + 2);
    const watch = new WatchRecorder(backend.open(), 'fleet');
    try {
      for (let i = 0; i < COUNT; i++) {
        running.push(spawnInstance(backend, { service: 'fleet', portRange: range, drainMs: 0 }));
      }
      const ready = await Promise.all(running.map((p) => p.ready));
      const ports = ready.map((r) => r.port);
      expect(new Set(ports).size).toBe(COUNT);
      for (const port of ports) {
        expect(port).toBeGreaterThanOrEqual(range.start);
        expect(port).toBeLessThanOrEqual(range.end);
      }
      const ids = ready.map((r) => r.id).sort();
      expect(new Set(ids).size).toBe(COUNT);
      await waitFor(() => JSON.stringify(watch.current()) === JSON.stringify(ids), 10_000, 'all instances in the healthy set');

      for (const p of running) p.kill('SIGTERM');
      const exits = await Promise.all(running.map((p) => p.exited));
      expect(exits.every((e) => e.code === 0)).toBe(true);
      await waitFor(() => watch.current().length === 0, 5_000, 'all instances gone');
    } finally {
      watch.close();
    }
  });
});
