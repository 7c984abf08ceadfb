import { chmod, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NotRegisteredError, silentLogger, type LocalRegistry, type WatchUpdate } from '../src/index.js';
import { WatchRecorder } from '../src/testkit/watch-recorder.js';
import { delay, inst, localHarness, recordingLogger, waitFor } from './fixtures/local-helpers.js';

const h = localHarness();
// Long enough that only fs.watch or the expiry timer can explain a prompt update.
const NO_RESCAN = 60_000;

function recorder(registry: LocalRegistry, service: string, filter?: { tags?: string[] }) {
  const rec = new WatchRecorder(registry, service, filter ? { filter } : undefined);
  h.defer(() => rec.close());
  return rec;
}

describe('LocalRegistry watch', () => {
  it('delivers the current set first, then a new healthy instance within 1 s', async () => {
    const dir = await h.tempDir();
    const writer = h.open({ dir, logger: silentLogger });
    const reader = h.open({ dir, logger: silentLogger });
    const watch = recorder(reader, 'orders');
    await watch.until((ids) => ids.length === 0, 2_000, 'the initial empty set');
    await writer.register(inst('orders-1'), { ttlMs: 10_000 });
    await writer.heartbeat('orders-1');
    const elapsed = await watch.until((ids) => ids.includes('orders-1'), 3_000, 'the new instance');
    expect(elapsed).toBeLessThanOrEqual(1_000);
    expect(watch.updates.every((u) => u.ok)).toBe(true);
  });

  it('follows changes through fs.watch and the expiry timer, without periodic rescans', async () => {
    const dir = await h.tempDir();
    const writer = h.open({ dir, logger: silentLogger });
    const reader = h.open({ dir, logger: silentLogger, rescanIntervalMs: NO_RESCAN });
    const watch = recorder(reader, 'orders');
    await watch.until((ids) => ids.length === 0, 2_000, 'the initial empty set');

    await writer.register(inst('orders-1'), { ttlMs: 1_000 });
    await writer.register(inst('orders-2'), { ttlMs: 10_000 });
    await writer.heartbeat('orders-2');
    await watch.until((ids) => ids.join() === 'orders-2', 2_000, 'orders-2 (fs event)');
    await writer.heartbeat('orders-1');
    await watch.until((ids) => ids.join() === 'orders-1,orders-2', 2_000, 'both');
    // No file changes from here: only the timer set for orders-1's expiry can notice the lapse.
    await watch.until((ids) => ids.join() === 'orders-2', 3_000, 'the TTL lapse');
    await writer.deregister('orders-2');
    await watch.until((ids) => ids.length === 0, 2_000, 'the deregistration');
  });

  it('the periodic rescan catches what no file event announces', async () => {
    const dir = await h.tempDir();
    let offset = 0;
    const registry = h.open({ dir, logger: silentLogger, rescanIntervalMs: 50, now: () => Date.now() + offset });
    await registry.register(inst('orders-1'), { ttlMs: 60_000 });
    await registry.heartbeat('orders-1');
    const watch = recorder(registry, 'orders');
    await watch.until((ids) => ids.length === 1, 2_000, 'the instance');
    // The clock jumps past the TTL: no file changes, and the expiry timer is a minute away.
    offset = 61_000;
    await watch.until((ids) => ids.length === 0, 2_000, 'the rescan');
  });

  it('does not repeat an unchanged set when files are rewritten', async () => {
    const dir = await h.tempDir();
    const writer = h.open({ dir, logger: silentLogger });
    const reader = h.open({ dir, logger: silentLogger, rescanIntervalMs: 20 });
    await writer.register(inst('orders-1'), { ttlMs: 10_000 });
    await writer.heartbeat('orders-1');
    const watch = recorder(reader, 'orders');
    await watch.until((ids) => ids.length === 1, 2_000, 'the instance');
    for (let i = 0; i < 5; i++) {
      await writer.heartbeat('orders-1');
      await delay(40);
    }
    expect(watch.updates).toHaveLength(1);
  });

  it('shares one scanner among watches; filters apply per watch; closing one leaves the others', async () => {
    const dir = await h.tempDir();
    const logger = recordingLogger();
    const registry = h.open({ dir, logger });
    await registry.register({ ...inst('orders-1'), tags: ['v1'] }, { ttlMs: 10_000 });
    await registry.register({ ...inst('orders-2'), tags: ['v2'] }, { ttlMs: 10_000 });
    await registry.register(inst('payments-1', 'payments'), { ttlMs: 10_000 });
    for (const id of ['orders-1', 'orders-2', 'payments-1']) await registry.heartbeat(id);

    const all = recorder(registry, 'orders');
    const v2 = recorder(registry, 'orders', { tags: ['v2'] });
    const payments = recorder(registry, 'payments');
    const throwing: WatchUpdate[] = [];
    const bad = registry.watch('orders', (u) => {
      throwing.push(u);
      throw new Error('listener bug');
    });
    await all.until((ids) => ids.join() === 'orders-1,orders-2', 2_000, 'all orders');
    await v2.until((ids) => ids.join() === 'orders-2', 2_000, 'v2 orders');
    await payments.until((ids) => ids.join() === 'payments-1', 2_000, 'payments');
    await waitFor(() => throwing.length > 0, 2_000, 'the throwing listener');
    expect(logger.count('watch listener threw: listener bug')).toBe(1);

    bad.close();
    bad[Symbol.dispose]();
    all.close();
    await registry.deregister('orders-2');
    await v2.until((ids) => ids.length === 0, 2_000, 'v2 removal');
    const allUpdates = all.updates.length;
    await registry.deregister('payments-1');
    await payments.until((ids) => ids.length === 0, 2_000, 'payments removal');
    expect(all.updates).toHaveLength(allUpdates);
    expect(throwing).toHaveLength(1);
  });

  it('a logger that throws breaks neither list nor watch', async () => {
    const dir = await h.tempDir();
    const logger = { calls: 0, warn() { this.calls++; throw new Error('logger down'); } };
    const registry = h.open({ dir, logger });
    await writeFile(join(dir, 'garbage.json'), '{', { mode: 0o600 });
    await registry.register(inst('orders-1'), { ttlMs: 10_000 });
    await registry.heartbeat('orders-1');
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(['orders-1']);
    const seen: string[][] = [];
    const handle = registry.watch('orders', (u) => {
      if (u.ok) seen.push(u.instances.map((i) => i.id));
      throw new Error('listener down too');
    });
    h.defer(() => handle.close());
    await waitFor(() => seen.length === 1, 2_000, 'the first update');
    await registry.deregister('orders-1');
    await waitFor(() => seen.length === 2, 2_000, 'the second update');
    expect(seen).toEqual([['orders-1'], []]);
    expect(logger.calls).toBeGreaterThanOrEqual(3);
  });

  it('keeps watching after the directory is wiped: the registrant notices and registers again', async () => {
    const dir = await h.tempDir();
    const writer = h.open({ dir, logger: silentLogger });
    // Long rescans: recovery must come from a re-established fs.watch on the new directory.
    const reader = h.open({ dir, logger: silentLogger, rescanIntervalMs: NO_RESCAN });
    const watch = recorder(reader, 'orders');
    await writer.register(inst('orders-1'), { ttlMs: 10_000 });
    await writer.heartbeat('orders-1');
    await watch.until((ids) => ids.includes('orders-1'), 2_000, 'the instance');

    await rm(dir, { recursive: true, force: true });
    await watch.until((ids) => ids.length === 0, 2_000, 'the wiped registry');
    await expect(writer.heartbeat('orders-1')).rejects.toBeInstanceOf(NotRegisteredError);
    await writer.register(inst('orders-1'), { ttlMs: 10_000 });
    await writer.heartbeat('orders-1');
    await watch.until((ids) => ids.includes('orders-1'), 2_000, 'the re-registered instance');
    // And again, now that the watch runs on the recreated directory.
    await writer.deregister('orders-1');
    await watch.until((ids) => ids.length === 0, 2_000, 'the deregistration');
    expect(watch.updates.every((u) => u.ok)).toBe(true);
  });

  it('survives a wipe and re-creation it did not see happen (same inode number, new directory)', async () => {
    const dir = await h.tempDir();
    const writer = h.open({ dir, logger: silentLogger });
    const reader = h.open({ dir, logger: silentLogger, rescanIntervalMs: NO_RESCAN });
    const watch = recorder(reader, 'orders');
    await watch.until((ids) => ids.length === 0, 2_000, 'the initial set');
    // The writer recreates the directory before the reader rescans.
    await rm(dir, { recursive: true, force: true });
    await writer.register(inst('orders-1'), { ttlMs: 10_000 });
    await writer.heartbeat('orders-1');
    await watch.until((ids) => ids.includes('orders-1'), 2_000, 'the instance in the new directory');
    await writer.heartbeat('orders-1', { status: 'critical' });
    await watch.until((ids) => ids.length === 0, 2_000, 'a change in the new directory');
  });

  it('reports a directory that became unsafe to watchers, once, and recovers when it is fixed', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger, rescanIntervalMs: 50 });
    await registry.register(inst('orders-1'), { ttlMs: 10_000 });
    await registry.heartbeat('orders-1');
    const updates: WatchUpdate[] = [];
    const handle = registry.watch('orders', (u) => updates.push(u));
    h.defer(() => handle.close());
    await waitFor(() => updates.length === 1, 2_000, 'the first update');

    // (A symlinked directory is refused the same way: see local-files.test.ts. chmod is atomic,
    // where replacing the directory would race the rescans that recreate it.)
    await chmod(dir, 0o777);
    await waitFor(() => updates.some((u) => !u.ok), 2_000, 'the error update');
    expect(updates.find((u) => !u.ok)).toMatchObject({ ok: false, error: { code: 'PEERLB_UNSAFE_REGISTRY_DIR' } });
    await delay(150);
    expect(updates.filter((u) => !u.ok)).toHaveLength(1);

    await chmod(dir, 0o700);
    await waitFor(() => updates.at(-1)?.ok === true, 2_000, 'recovery');
    expect(updates.at(-1)).toMatchObject({ ok: true, instances: [expect.objectContaining({ id: 'orders-1' })] });
  });
});
