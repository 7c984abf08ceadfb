import { chmod, chown, mkdir, readFile, readdir, rm, stat, symlink, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryUnavailableError, UnsafeRegistryDirectoryError, silentLogger, type WatchUpdate } from '../src/index.js';
import { delay, inst, localHarness, readJson, recordingLogger, waitFor } from './fixtures/local-helpers.js';

const h = localHarness();
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** A valid, passing record for `id`, as another process would have written it. */
async function validRecord(id: string, mutate: (r: Record<string, any>) => void = () => {}) {
  const now = Date.now();
  const record: Record<string, any> = {
    peerlb: 1,
    instance: { ...inst(id), tags: [], meta: {} },
    owner: { pid: 1, hostname: 'elsewhere', registry: 'other' },
    checks: { ttl: { ttlMs: 60_000, status: 'passing', output: '', since: now, expiresAt: now + 60_000 } },
    registeredAt: now,
  };
  mutate(record);
  return JSON.stringify(record);
}

describe('LocalRegistry reading untrusted files', () => {
  it('serves valid files from other writers', async () => {
    const dir = await h.tempDir();
    await writeFile(join(dir, 'orders-9.json'), await validRecord('orders-9'), { mode: 0o600 });
    const registry = h.open({ dir, logger: silentLogger });
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(['orders-9']);
  });

  it('skips malformed, foreign, symlinked, world-writable and foreign-owned files with one warning each', async () => {
    const dir = await h.tempDir();
    const outside = await h.tempDir();
    const logger = recordingLogger();
    const registry = h.open({ dir, logger, rescanIntervalMs: 20 });
    await registry.register(inst('orders-1'), { ttlMs: 60_000 });
    await registry.heartbeat('orders-1');

    const put = (name: string, body: string, mode = 0o600) => writeFile(join(dir, name), body, { mode });
    await put('garbage.json', '{"peerlb": 1, "instance": ');
    await put('foreign.json', JSON.stringify({ hello: 'world' }));
    await put('array.json', '[1,2,3]');
    await put('future.json', await validRecord('future', (r) => (r.peerlb = 2)));
    await put('badport.json', await validRecord('badport', (r) => (r.instance.port = 70_000)));
    await put('badaddr.json', await validRecord('badaddr', (r) => (r.instance.address = 'http://evil')));
    await put('misnamed.json', await validRecord('orders-2'));
    await put('nochecks.json', await validRecord('nochecks', (r) => (r.checks = {})));
    await put('badstatus.json', await validRecord('badstatus', (r) => (r.checks.ttl.status = 'great')));
    await put('writable.json', await validRecord('writable'));
    await chmod(join(dir, 'writable.json'), 0o666);
    await put('groupw.json', await validRecord('groupw'));
    await chmod(join(dir, 'groupw.json'), 0o620);
    await writeFile(join(outside, 'linked.json'), await validRecord('linked'), { mode: 0o600 });
    await symlink(join(outside, 'linked.json'), join(dir, 'linked.json'));
    await symlink(join(outside, 'nothing.json'), join(dir, 'dangling.json'));
    await mkdir(join(dir, 'adir.json'));
    await put('notes.txt', 'not a record, not a .json name: ignored silently');
    await put('.orders-1.json.abc123.tmp', '{"partial');
    await put('owned.json', await validRecord('owned'));
    if (isRoot) await chown(join(dir, 'owned.json'), NOBODY, NOBODY);

    const skipped = [
      'garbage.json',
      'foreign.json',
      'array.json',
      'future.json',
      'badport.json',
      'badaddr.json',
      'misnamed.json',
      'nochecks.json',
      'badstatus.json',
      'writable.json',
      'groupw.json',
      'linked.json',
      'dangling.json',
      'adir.json',
    ];
    if (isRoot) skipped.push('owned.json');
    const served = isRoot ? ['orders-1'] : ['orders-1', 'owned'];

    const updates: WatchUpdate[] = [];
    const handle = registry.watch('orders', (u) => updates.push(u));
    h.defer(() => handle.close());
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(served);
    expect((await registry.list('badport')).map((i) => i.id)).toEqual([]);
    // Several rescans (every 20 ms) and lists later, still one warning per file.
    await delay(200);
    await registry.list('orders');
    for (const name of skipped) expect(logger.count(`skipped ${name} `), name).toBe(1);
    expect(logger.messages).toHaveLength(skipped.length);
    expect(updates.every((u) => u.ok)).toBe(true);
    expect(updates.at(-1)).toMatchObject({ ok: true, instances: served.map((id) => expect.objectContaining({ id })) });

    const reasons = (name: string) => logger.messages.find((m) => m.includes(`skipped ${name} `)) ?? '';
    expect(reasons('garbage.json')).toContain('not valid JSON');
    expect(reasons('foreign.json')).toContain('not a peerlb registry record');
    expect(reasons('future.json')).toContain('unsupported record version 2');
    expect(reasons('badport.json')).toContain('instance.port');
    expect(reasons('misnamed.json')).toContain('belongs in orders-2.json');
    expect(reasons('writable.json')).toContain('writable by group or others');
    expect(reasons('linked.json')).toContain('symbolic link');
    expect(reasons('adir.json')).toContain('not a regular file');
    if (isRoot) expect(reasons('owned.json')).toContain(`owned by uid ${NOBODY}`);

    // A changed file is a new file: reported again. A fixed file is served, a removed one forgotten.
    await put('garbage.json', '{"still": "garbage"');
    await writeFile(join(dir, 'badport.json'), await validRecord('badport', (r) => (r.instance.service = 'orders')));
    await rm(join(dir, 'foreign.json'));
    await waitFor(() => logger.count('skipped garbage.json ') === 2, 2_000, 'the second garbage warning');
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(['badport', ...served]);
    await put('foreign.json', JSON.stringify({ hello: 'again' }));
    await waitFor(() => logger.count('skipped foreign.json ') === 2, 2_000, 'the returning file to be reported again');
    // The malformed files were never touched.
    expect(await readFile(join(dir, 'array.json'), 'utf8')).toBe('[1,2,3]');
  });

  it('a concurrent reader never sees a partial file (atomic rename)', async () => {
    const dir = await h.tempDir();
    const logger = recordingLogger();
    const writer = h.open({ dir, logger });
    const reader = h.open({ dir, logger });
    const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(200)]));
    await writer.register({ ...inst('orders-1'), meta: big }, { ttlMs: 60_000 });
    let stop = false;
    let reads = 0;
    const readLoop = (async () => {
      while (!stop) {
        const raw = await readFile(join(dir, 'orders-1.json'), 'utf8');
        JSON.parse(raw);
        const listed = await reader.list('orders');
        expect(listed.length).toBeLessThanOrEqual(1);
        if (listed[0]) expect(Object.keys(listed[0].meta)).toHaveLength(200);
        reads++;
      }
    })();
    for (let i = 0; i < 150; i++) {
      await writer.heartbeat('orders-1', { status: i % 2 === 0 ? 'passing' : 'warning', note: `beat ${i}` });
    }
    stop = true;
    await readLoop;
    expect(reads).toBeGreaterThan(0);
    expect(logger.messages).toEqual([]);
    // No temp file left behind.
    expect(await readdir(dir)).toEqual(['orders-1.json']);
  });

  it('removes temp files abandoned by a dead writer, but not fresh ones', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await writeFile(join(dir, '.orders-1.json.dead.tmp'), '{"par', { mode: 0o600 });
    await writeFile(join(dir, '.orders-2.json.live.tmp'), '{"par', { mode: 0o600 });
    const old = new Date(Date.now() - 120_000);
    await utimes(join(dir, '.orders-1.json.dead.tmp'), old, old);
    await registry.list('orders');
    expect(await readdir(dir)).toEqual(['.orders-2.json.live.tmp']);
  });
});

describe('LocalRegistry directory safety', () => {
  const expectUnsafe = async (dir: string, reason: string) => {
    const registry = h.open({ dir, logger: silentLogger });
    const err = await registry.register(inst('orders-1'), { ttlMs: 1_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeRegistryDirectoryError);
    expect(err).toMatchObject({ code: 'PEERLB_UNSAFE_REGISTRY_DIR', path: dir });
    expect((err as Error).message).toContain(reason);
    await expect(registry.list('orders')).rejects.toBeInstanceOf(UnsafeRegistryDirectoryError);
    await expect(registry.heartbeat('orders-1')).rejects.toBeInstanceOf(UnsafeRegistryDirectoryError);
    const updates: WatchUpdate[] = [];
    const handle = registry.watch('orders', (u) => updates.push(u));
    h.defer(() => handle.close());
    await waitFor(() => updates.length > 0, 2_000, 'the watch error');
    expect(updates[0]).toMatchObject({ ok: false, error: { code: 'PEERLB_UNSAFE_REGISTRY_DIR' } });
  };

  it('refuses a symlinked directory', async () => {
    const base = await h.tempDir();
    await mkdir(join(base, 'real'), { mode: 0o700 });
    await symlink(join(base, 'real'), join(base, 'link'));
    await expectUnsafe(join(base, 'link'), 'symbolic link');
    expect(await readdir(join(base, 'real'))).toEqual([]);
  });

  it('refuses a world-writable directory', async () => {
    const dir = await h.tempDir();
    await chmod(dir, 0o777);
    await expectUnsafe(dir, 'writable by group or others (mode 0777)');
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a group-writable directory', async () => {
    const dir = await h.tempDir();
    await chmod(dir, 0o770);
    await expectUnsafe(dir, 'mode 0770');
  });

  it('refuses a path that is not a directory', async () => {
    const base = await h.tempDir();
    await writeFile(join(base, 'file'), 'x');
    await expectUnsafe(join(base, 'file'), 'not a directory');
  });

  it('refuses a directory owned by another user', async () => {
    const dir = await h.tempDir();
    if (isRoot) {
      await chown(dir, NOBODY, NOBODY);
      await expectUnsafe(dir, `owned by uid ${NOBODY}`);
    } else {
      // Only root can hand a directory to someone else; our own is accepted.
      const registry = h.open({ dir, logger: silentLogger });
      await registry.register(inst('orders-1'), { ttlMs: 1_000 });
      expect((await stat(dir)).uid).toBe(process.getuid?.());
    }
  });

  it('accepts a directory readable by others but writable only by its owner', async () => {
    const dir = await h.tempDir();
    await chmod(dir, 0o755);
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register(inst('orders-1'), { ttlMs: 1_000 });
    await registry.heartbeat('orders-1');
    expect(await registry.list('orders')).toHaveLength(1);
    expect((await stat(join(dir, 'orders-1.json'))).mode & 0o777).toBe(0o600);
  });

  it('reports a directory it cannot reach as RegistryUnavailableError, to list and to watches', async () => {
    const base = await h.tempDir();
    await writeFile(join(base, 'blocker'), 'a file where a directory should be');
    const dir = join(base, 'blocker', 'reg');
    const registry = h.open({ dir, logger: silentLogger, rescanIntervalMs: 50 });
    await expect(registry.list('orders')).rejects.toBeInstanceOf(RegistryUnavailableError);
    await expect(registry.register(inst('orders-1'), { ttlMs: 1_000 })).rejects.toMatchObject({
      code: 'PEERLB_REGISTRY_UNAVAILABLE',
    });
    const updates: WatchUpdate[] = [];
    const handle = registry.watch('orders', (u) => updates.push(u));
    h.defer(() => handle.close());
    await waitFor(() => updates.length > 0, 2_000, 'the watch error');
    expect(updates[0]).toMatchObject({ ok: false, error: expect.any(RegistryUnavailableError) });
    await delay(200);
    // The same error is not repeated on every rescan.
    expect(updates).toHaveLength(1);
    await rm(join(base, 'blocker'));
    await waitFor(() => updates.length > 1, 2_000, 'recovery');
    expect(updates[1]).toMatchObject({ ok: true, instances: [] });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });
});
