// Issue 12 item 1, the repair of the fault: when a full or read-only registry disk can be written
// again, the leases that lapsed during the fault stay lapsed until each owner's next heartbeat
// lands. A reader looking in between must not drop those instances, nor reap them (they have been
// lapsed for longer than deregisterCriticalAfterMs after any fault of a few seconds). The real
// disk fault is test/reliability/disk-full-local.test.ts; here the directory's writability is
// switched by hand (the probe's write is injected) and the clock is ours, so every step of the
// window is hit exactly, as a loaded machine hits it by chance.
import { access, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryUnavailableError } from '../src/errors.js';
import { FileProblems } from '../src/local/file-problems.js';
import { RecordCache } from '../src/local/record-cache.js';
import { healthyInstances, readSnapshot } from '../src/local/snapshot.js';
import { WriteProbe } from '../src/local/write-probe.js';
import { inst, localHarness, recordingLogger } from './fixtures/local-helpers.js';

const h = localHarness();
const T0 = 1_000_000;
const TTL = 1_000;
const REAP_AFTER = 2_000;

/** A record of an instance owned by this (live) process, on a 1 s TTL last renewed at `renewedAt`. */
async function publish(dir: string, id: string, renewedAt: number): Promise<void> {
  const body = {
    peerlb: 1,
    instance: inst(id, 'orders', 9_000),
    owner: { pid: process.pid, hostname: hostname(), registry: 'test' },
    checks: { ttl: { status: 'passing', output: '', since: T0, expiresAt: renewedAt + TTL, ttlMs: TTL } },
    deregisterCriticalAfterMs: REAP_AFTER,
    registeredAt: T0,
  };
  await writeFile(join(dir, `${id}.json`), `${JSON.stringify(body)}\n`, { mode: 0o600 });
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe('local registry after a disk fault is repaired (issue 12 item 1)', () => {
  it('leases that lapsed while the directory could not be written are held for one lease after the repair; nothing is reaped', async () => {
    const dir = await h.tempDir();
    for (const id of ['a', 'b', 'c']) await publish(dir, id, T0);
    let writable = false;
    let probes = 0;
    const probe = new WriteProbe(dir, async () => {
      probes++;
      return writable ? undefined : 'ENOSPC';
    });
    const logger = recordingLogger();
    const problems = new FileProblems(dir, logger);
    const cache = new RecordCache();
    let clock = T0;
    const read = () => readSnapshot(dir, problems, () => clock, cache, probe);
    const healthy = async () => healthyInstances(await read(), 'orders', undefined, logger).map((i) => i.id);

    // Before any lease lapsed, the fault is invisible and nothing is probed.
    clock = T0 + 500;
    expect(await healthy()).toEqual(['a', 'b', 'c']);
    expect(probes).toBe(0);

    // Leases lapsed, owners alive, directory not writable: degraded, not "no instances".
    clock = T0 + 1_500;
    await expect(read()).rejects.toThrow(RegistryUnavailableError);
    await expect(read()).rejects.toThrow(/registry degraded.*ENOSPC/);
    // Long enough for a reaper (lapsed 5 s > 2 s), past the failed probe's reuse.
    clock = T0 + 6_000;
    await expect(read()).rejects.toThrow(/registry degraded/);

    // Repaired; no owner has renewed yet. Every instance still listed, no file removed.
    writable = true;
    clock = T0 + 7_200;
    expect(await healthy()).toEqual(['a', 'b', 'c']);
    for (const id of ['a', 'b', 'c']) expect(await exists(join(dir, `${id}.json`)), id).toBe(true);

    // One owner renews; the others are still within the lease they were given at the repair.
    await publish(dir, 'a', T0 + 7_500);
    clock = T0 + 8_000;
    expect(await healthy()).toEqual(['a', 'b', 'c']);

    // The hold is one lease long: owners that did not renew in it read as lapsed, as any lapse on
    // a writable directory does...
    clock = T0 + 8_300;
    expect(await healthy()).toEqual(['a']);
    expect(await exists(join(dir, 'b.json'))).toBe(true);
    // ...and are reaped deregisterCriticalAfterMs after the hold ran out, not after the lapse.
    clock = T0 + 7_200 + TTL + REAP_AFTER + 10;
    await publish(dir, 'a', clock);
    expect(await healthy()).toEqual(['a']);
    expect(await exists(join(dir, 'b.json'))).toBe(false);
    expect(await exists(join(dir, 'c.json'))).toBe(false);
    expect(logger.messages).toEqual([]);
  });

  it('a lease that lapses while the directory can be written is not held', async () => {
    const dir = await h.tempDir();
    await publish(dir, 'a', T0);
    await publish(dir, 'b', T0 + 5_000);
    const probe = new WriteProbe(dir, async () => undefined);
    const logger = recordingLogger();
    const read = (at: number) => readSnapshot(dir, new FileProblems(dir, logger), () => at, new RecordCache(), probe);
    const healthy = async (at: number) => healthyInstances(await read(at), 'orders', undefined, logger).map((i) => i.id);

    expect(await healthy(T0 + 1_500)).toEqual(['b']);
    expect(await healthy(T0 + 1_000 + REAP_AFTER + 10)).toEqual(['b']);
    expect(await exists(join(dir, 'a.json'))).toBe(false);
  });

  it('a fault that returns while an owner is held counts again from the next repair', async () => {
    const dir = await h.tempDir();
    await publish(dir, 'a', T0);
    let writable = false;
    const probe = new WriteProbe(dir, async () => (writable ? undefined : 'EROFS'));
    const logger = recordingLogger();
    const cache = new RecordCache();
    const read = (at: number) => readSnapshot(dir, new FileProblems(dir, logger), () => at, cache, probe);
    const healthy = async (at: number) => healthyInstances(await read(at), 'orders', undefined, logger).map((i) => i.id);

    await expect(read(T0 + 1_500)).rejects.toThrow(/registry degraded.*EROFS/);
    writable = true;
    expect(await healthy(T0 + 3_000)).toEqual(['a']); // held until T0 + 4_000
    writable = false;
    await expect(read(T0 + 4_100)).rejects.toThrow(/registry degraded.*EROFS/);
    // Still failing well past the reap delay: nothing removed.
    await expect(read(T0 + 9_000)).rejects.toThrow(/registry degraded/);
    expect(await exists(join(dir, 'a.json'))).toBe(true);
    writable = true;
    expect(await healthy(T0 + 10_000)).toEqual(['a']);
    expect(await exists(join(dir, 'a.json'))).toBe(true);
  });
});
