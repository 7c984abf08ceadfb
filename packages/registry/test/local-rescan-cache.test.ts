// Issue 12 item 2: rescans read only what changed (record-cache.ts), and records are capped well
// under 1 MiB. The cost side is measured by bench/src/registry-idle.ts; these tests hold the
// correctness side: whatever way a file changes, a watcher and list() see it.
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../src/errors.js';
import type { WatchUpdate } from '../src/types.js';
import { inst, localHarness, recordingLogger, waitFor } from './fixtures/local-helpers.js';

const h = localHarness();

function record(id: string, port: number, extra: Record<string, unknown> = {}): string {
  const now = Date.now();
  return `${JSON.stringify({
    peerlb: 1,
    instance: { ...inst(id, 'orders', port), ...extra },
    owner: { pid: process.pid, hostname: hostname(), registry: 'test' },
    checks: { ttl: { status: 'passing', output: '', since: now, expiresAt: now + 600_000, ttlMs: 600_000 } },
    registeredAt: now,
  })}\n`;
}

/** Writes like a registrant does: a temp file renamed over the record (a new inode). */
async function publish(dir: string, id: string, port: number): Promise<void> {
  const temp = join(dir, `.${id}.json.${port}.tmp`);
  await writeFile(temp, record(id, port), { mode: 0o600 });
  await rename(temp, join(dir, `${id}.json`));
}

function ports(update: WatchUpdate | undefined): number[] {
  return update?.ok ? update.instances.map((i) => i.port).sort((a, b) => a - b) : [];
}

describe('local registry rescans (issue 12 item 2)', () => {
  it('a watcher sees every kind of change: rewrites within one clock tick, edits in place, chmod, removal, addition', async () => {
    const dir = await h.tempDir();
    for (let i = 1; i <= 50; i++) await publish(dir, `orders-${i}`, 10_000 + i);
    const registry = h.open({ dir, rescanIntervalMs: 50, logger: recordingLogger() });
    let last: WatchUpdate | undefined;
    const watch = registry.watch('orders', (u) => (last = u));
    h.defer(() => watch.close());
    await waitFor(() => ports(last).length === 50, 5_000, 'the first delivery');

    // Two renames in a row, faster than file times tick: the second must win.
    await publish(dir, 'orders-1', 20_001);
    await publish(dir, 'orders-1', 30_001);
    await waitFor(() => ports(last).includes(30_001), 5_000, 'the second rewrite');
    expect(ports(last)).not.toContain(20_001);

    // An edit in place (same inode), as an editor or another tool might make.
    await writeFile(join(dir, 'orders-2.json'), record('orders-2', 30_002));
    await waitFor(() => ports(last).includes(30_002), 5_000, 'the edit in place');

    // A file made group-writable is no longer trusted.
    await chmod(join(dir, 'orders-3.json'), 0o620);
    await waitFor(() => !ports(last).includes(10_003), 5_000, 'the chmod');

    await rm(join(dir, 'orders-4.json'));
    await publish(dir, 'orders-51', 10_051);
    await waitFor(() => !ports(last).includes(10_004) && ports(last).includes(10_051), 5_000, 'removal and addition');
    expect(ports(last)).toHaveLength(49);
  });

  it('list() sees an edit in place at once', async () => {
    const dir = await h.tempDir();
    await publish(dir, 'orders-1', 10_001);
    const registry = h.open({ dir, logger: recordingLogger() });
    expect((await registry.list('orders')).map((i) => i.port)).toEqual([10_001]);
    await writeFile(join(dir, 'orders-1.json'), record('orders-1', 10_002));
    expect((await registry.list('orders')).map((i) => i.port)).toEqual([10_002]);
  });

  it('a valid-looking record over 64 KiB is skipped and reported; register refuses an instance that would not fit', async () => {
    const dir = await h.tempDir();
    const logger = recordingLogger();
    // Valid in every field, 100 KiB of meta: read and parsed on every rescan before.
    const meta: Record<string, string> = {};
    for (let i = 0; i < 200; i++) meta[`k${i}`] = 'x'.repeat(500);
    await writeFile(join(dir, 'orders-big.json'), record('orders-big', 10_001, { meta }), { mode: 0o600 });
    await publish(dir, 'orders-1', 10_002);
    const registry = h.open({ dir, logger });
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(['orders-1']);
    expect(logger.count('larger than 65536 bytes')).toBe(1);

    await expect(
      registry.register({ ...inst('orders-huge', 'orders', 10_003), meta }, { ttlMs: 5_000 }),
    ).rejects.toThrow(InvalidOptionsError);
    await expect(registry.register({ ...inst('orders-huge', 'orders', 10_003), meta }, { ttlMs: 5_000 })).rejects.toMatchObject({
      field: 'instance',
    });
  });
});
