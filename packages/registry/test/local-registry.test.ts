import { watch } from 'node:fs';
import { access, chmod, copyFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ClosedError,
  InvalidOptionsError,
  LocalRegistry,
  NotRegisteredError,
  silentLogger,
  type LocalRegistryOptions,
} from '../src/index.js';
import { startHealthServer } from '../src/testkit/health-server.js';
import { WatchRecorder } from '../src/testkit/watch-recorder.js';
import { delay, inst, localHarness, readJson, recordingLogger, waitFor } from './fixtures/local-helpers.js';

const h = localHarness();

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    return (err as InvalidOptionsError).field;
  }
  throw new Error('expected InvalidOptionsError');
}

async function healthServer() {
  const server = await startHealthServer();
  h.defer(() => server.close());
  return server;
}

function recorder(registry: LocalRegistry, service: string) {
  const rec = new WatchRecorder(registry, service);
  h.defer(() => rec.close());
  return rec;
}

describe('LocalRegistry options', () => {
  it('names the offending field', () => {
    expect(fieldOf(() => new LocalRegistry({ dir: '' }))).toBe('dir');
    expect(fieldOf(() => new LocalRegistry({ dir: 'a\0b' }))).toBe('dir');
    expect(fieldOf(() => new LocalRegistry({ dir: 42 as unknown as string }))).toBe('dir');
    for (const bad of [0, -1, Number.NaN, Infinity, 5, '500']) {
      expect(fieldOf(() => new LocalRegistry({ rescanIntervalMs: bad as number }))).toBe('rescanIntervalMs');
    }
    expect(fieldOf(() => new LocalRegistry({ logger: {} as never }))).toBe('logger');
    expect(fieldOf(() => new LocalRegistry({ now: 5 as never }))).toBe('now');
    expect(fieldOf(() => new LocalRegistry({ env: 'x' as never }))).toBe('env');
    expect(fieldOf(() => new LocalRegistry({ env: { PEERLB_REGISTRY_DIR: 'a\0' } }))).toBe('env.PEERLB_REGISTRY_DIR');
    expect(fieldOf(() => new LocalRegistry(null as unknown as LocalRegistryOptions))).toBe('options');
  });

  it('takes the directory from the option, then PEERLB_REGISTRY_DIR, then a per-user temp folder', () => {
    expect(new LocalRegistry({ dir: '/srv/reg', env: { PEERLB_REGISTRY_DIR: '/env/reg' } }).dir).toBe('/srv/reg');
    expect(new LocalRegistry({ env: { PEERLB_REGISTRY_DIR: '/env/reg' } }).dir).toBe('/env/reg');
    const fallback = new LocalRegistry({ env: {} }).dir;
    expect(fallback.startsWith(join(tmpdir(), 'peerlb-registry-'))).toBe(true);
    if (process.getuid) expect(fallback).toBe(join(tmpdir(), `peerlb-registry-${process.getuid()}`));
    expect(new LocalRegistry({ env: { PEERLB_REGISTRY_DIR: '' } }).dir).toBe(fallback);
    expect(new LocalRegistry({ dir: 'relative/reg' }).dir).toBe(join(process.cwd(), 'relative/reg'));
  });

  it('does no I/O when constructed: the directory appears on first use, mode 0700', async () => {
    const dir = join(await h.tempDir(), 'nested', 'reg');
    const registry = h.open({ dir, logger: silentLogger });
    await delay(20);
    await expect(access(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await registry.list('orders')).toEqual([]);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
  });
});

describe('LocalRegistry register / heartbeat / list', () => {
  it('writes one 0600 file per instance, starts critical, and serves it after a heartbeat', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register({ ...inst('orders-1'), tags: ['v1'], meta: { zone: 'a' } }, { ttlMs: 5_000 });
    expect(await readdir(dir)).toEqual(['orders-1.json']);
    expect((await stat(join(dir, 'orders-1.json'))).mode & 0o777).toBe(0o600);
    const file = await readJson(join(dir, 'orders-1.json'));
    expect(file).toMatchObject({
      peerlb: 1,
      instance: { id: 'orders-1', service: 'orders', address: '127.0.0.1', port: 8080, tags: ['v1'], meta: { zone: 'a' } },
      owner: { pid: process.pid },
      checks: { ttl: { ttlMs: 5_000, status: 'critical', expiresAt: null } },
    });
    expect(await registry.list('orders')).toEqual([]);

    await registry.heartbeat('orders-1');
    expect(await registry.list('orders')).toEqual([
      { id: 'orders-1', service: 'orders', address: '127.0.0.1', port: 8080, tags: ['v1'], meta: { zone: 'a' } },
    ]);
    expect(await registry.list('payments')).toEqual([]);
    expect(await registry.list('orders', { filter: { tags: ['v2'] } })).toEqual([]);
    expect((await registry.list('orders', { filter: { meta: { zone: 'a' } } })).map((i) => i.id)).toEqual(['orders-1']);
  });

  it('percent-encodes ":" in file names and reads such files back', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register(inst('orders:1'), { ttlMs: 5_000 });
    await registry.heartbeat('orders:1');
    expect(await readdir(dir)).toEqual(['orders%3A1.json']);
    expect((await registry.list('orders')).map((i) => i.id)).toEqual(['orders:1']);
  });

  it('applies the TTL rule with the injected clock: warning and critical heartbeats, lapse, since', async () => {
    const dir = await h.tempDir();
    let now = 1_000_000;
    const registry = h.open({ dir, logger: silentLogger, now: () => now });
    await registry.register(inst('orders-1'), { ttlMs: 1_000 });
    await registry.heartbeat('orders-1', { note: 'ok' });
    expect(await registry.list('orders')).toHaveLength(1);
    now += 999;
    expect(await registry.list('orders')).toHaveLength(1);
    now += 1;
    expect(await registry.list('orders')).toEqual([]);

    await registry.heartbeat('orders-1', { status: 'warning', note: 'slow' });
    expect(await registry.list('orders')).toEqual([]);
    const file = await readJson(join(dir, 'orders-1.json'));
    expect(file.checks.ttl).toMatchObject({ status: 'warning', output: 'slow', since: now, expiresAt: now + 1_000 });

    now += 10;
    await registry.heartbeat('orders-1', { status: 'warning' });
    expect((await readJson(join(dir, 'orders-1.json'))).checks.ttl.since).toBe(now - 10);
    await registry.heartbeat('orders-1');
    expect(await registry.list('orders')).toHaveLength(1);
  });

  it('re-registering keeps the check status when the check is unchanged, and resets it when it changed', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register(inst('orders-1'), { ttlMs: 5_000 });
    await registry.heartbeat('orders-1');
    await registry.register({ ...inst('orders-1'), port: 9090 }, { ttlMs: 5_000 });
    expect(await registry.list('orders')).toMatchObject([{ id: 'orders-1', port: 9090 }]);
    await registry.register(inst('orders-1'), { ttlMs: 6_000 });
    expect(await registry.list('orders')).toEqual([]);
  });

  it('a second registry object sees the first one’s instances and can heartbeat them', async () => {
    const dir = await h.tempDir();
    const a = h.open({ dir, logger: silentLogger });
    const b = h.open({ dir, logger: silentLogger });
    await a.register(inst('orders-1'), { ttlMs: 5_000 });
    await b.heartbeat('orders-1');
    expect((await a.list('orders')).map((i) => i.id)).toEqual(['orders-1']);
    expect((await b.list('orders')).map((i) => i.id)).toEqual(['orders-1']);
  });

  it('deregister removes the file and the instance; unknown ids are fine; heartbeat then fails', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register(inst('orders-1'), { ttlMs: 5_000 });
    await registry.heartbeat('orders-1');
    await registry.deregister('orders-1');
    expect(await readdir(dir)).toEqual([]);
    expect(await registry.list('orders')).toEqual([]);
    await expect(registry.deregister('orders-1')).resolves.toBeUndefined();
    await expect(registry.deregister('never-there')).resolves.toBeUndefined();
    await expect(registry.heartbeat('orders-1')).rejects.toBeInstanceOf(NotRegisteredError);
  });

  it('heartbeat after the directory was wiped rejects with NotRegisteredError, and re-registration works', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register(inst('orders-1'), { ttlMs: 5_000 });
    await rm(dir, { recursive: true, force: true });
    const err = await registry.heartbeat('orders-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotRegisteredError);
    expect(err).toMatchObject({ code: 'PEERLB_NOT_REGISTERED', instanceId: 'orders-1' });
    // A reader recreated the directory, empty, in the meantime: still not registered.
    expect(await registry.list('orders')).toEqual([]);
    await expect(registry.heartbeat('orders-1')).rejects.toBeInstanceOf(NotRegisteredError);

    await registry.register(inst('orders-1'), { ttlMs: 5_000 });
    await registry.heartbeat('orders-1');
    expect(await registry.list('orders')).toHaveLength(1);
  });

  it('heartbeat on a file that is garbage or holds another id rejects with NotRegisteredError', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register(inst('orders-1'), { ttlMs: 5_000 });
    await registry.register(inst('orders-2'), { ttlMs: 5_000 });
    await copyFile(join(dir, 'orders-2.json'), join(dir, 'orders-1.json'));
    await expect(registry.heartbeat('orders-1')).rejects.toBeInstanceOf(NotRegisteredError);
    await writeFile(join(dir, 'orders-2.json'), '{"peerlb":1,', { mode: 0o600 });
    await expect(registry.heartbeat('orders-2')).rejects.toBeInstanceOf(NotRegisteredError);
  });

  it('reaps an instance critical for longer than deregisterCriticalAfterMs: readers delete the file', async () => {
    const dir = await h.tempDir();
    let now = 5_000_000;
    const registry = h.open({ dir, logger: silentLogger, now: () => now });
    await registry.register(inst('orders-1'), { ttlMs: 1_000, deregisterCriticalAfterMs: 2_000 });
    await registry.register(inst('orders-2'), { ttlMs: 1_000 });
    await registry.heartbeat('orders-1');
    now += 1_000 + 1_999; // critical since the TTL lapsed, 1 999 ms ago
    await registry.list('orders');
    expect((await readdir(dir)).sort()).toEqual(['orders-1.json', 'orders-2.json']);
    now += 1;
    await registry.list('orders');
    // Without deregisterCriticalAfterMs an instance stays, critical, for as long as its file does.
    expect(await readdir(dir)).toEqual(['orders-2.json']);
    await expect(registry.heartbeat('orders-1')).rejects.toBeInstanceOf(NotRegisteredError);
  });

  it('the registrant’s own heartbeat reaps it when nobody reads the registry', async () => {
    const dir = await h.tempDir();
    let now = 5_000_000;
    const registry = h.open({ dir, logger: silentLogger, now: () => now });
    await registry.register(inst('orders-1'), { ttlMs: 1_000, deregisterCriticalAfterMs: 500 });
    now += 400;
    await registry.heartbeat('orders-1', { status: 'critical' });
    now += 100;
    await expect(registry.heartbeat('orders-1', { status: 'critical' })).rejects.toBeInstanceOf(NotRegisteredError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('rejects bad input with typed errors naming the field', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    await expect(registry.register({ ...inst('x-1'), port: 70_000 }, { ttlMs: 1_000 })).rejects.toMatchObject({
      code: 'PEERLB_INVALID_OPTIONS',
      field: 'instance.port',
    });
    await expect(registry.register(inst('../etc'), { ttlMs: 1_000 })).rejects.toMatchObject({ field: 'instance.id' });
    await expect(registry.register(inst('x-1'), {})).rejects.toMatchObject({ field: 'check' });
    await expect(registry.register(inst('x-1'), { http: { intervalMs: 100, path: 'health' } })).rejects.toMatchObject({
      field: 'check.http.path',
    });
    await expect(registry.heartbeat('x-1', { status: 'fine' as never })).rejects.toMatchObject({ field: 'status' });
    await expect(registry.heartbeat('bad/id')).rejects.toMatchObject({ field: 'id' });
    await expect(registry.deregister('')).rejects.toMatchObject({ field: 'id' });
    await expect(registry.list('no such')).rejects.toMatchObject({ field: 'service' });
    await expect(registry.list('orders', { filter: { tags: 'v1' as never } })).rejects.toMatchObject({ field: 'filter.tags' });
    expect(() => registry.watch('', () => {})).toThrow(expect.objectContaining({ field: 'service' }));
    expect(() => registry.watch('orders', 'nope' as never)).toThrow(expect.objectContaining({ field: 'listener' }));
    expect(await readdir(dir)).toEqual([]);
  });

  it('honours an aborted signal', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    const signal = AbortSignal.abort();
    await expect(registry.register(inst('x-1'), { ttlMs: 1_000 }, { signal })).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    await expect(registry.list('orders', { signal })).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    await expect(registry.heartbeat('x-1', { signal })).rejects.toMatchObject({ code: 'PEERLB_ABORTED' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('close() stops watches and checks, keeps registrations, and later calls fail with ClosedError', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const registry = h.open({ dir, logger: silentLogger });
    const updates: unknown[] = [];
    registry.watch('orders', (u) => updates.push(u));
    await registry.register({ ...inst('orders-1'), port: server.port }, { http: { intervalMs: 50 } });
    await waitFor(() => updates.length > 0 && server.hits > 0, 2_000, 'a watch update and a poll');
    await registry.close();
    await registry.close();
    const hits = server.hits;
    const delivered = updates.length;
    await delay(200);
    expect(server.hits).toBe(hits);
    expect(updates.length).toBe(delivered);
    expect(await readdir(dir)).toEqual(['orders-1.json']);
    await expect(registry.register(inst('orders-2'), { ttlMs: 1_000 })).rejects.toBeInstanceOf(ClosedError);
    await expect(registry.heartbeat('orders-1')).rejects.toMatchObject({ code: 'PEERLB_CLOSED' });
    await expect(registry.deregister('orders-1')).rejects.toBeInstanceOf(ClosedError);
    await expect(registry.list('orders')).rejects.toBeInstanceOf(ClosedError);
    expect(() => registry.watch('orders', () => {})).toThrow(ClosedError);
  });
});

describe('LocalRegistry HTTP checks (run by the registering process, with a lease)', () => {
  it('serves the instance while its HTTP check passes, drops it on 500, and brings it back on 200', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const owner = h.open({ dir, logger: silentLogger });
    const reader = h.open({ dir, logger: silentLogger });
    const watch = recorder(reader, 'orders');
    await owner.register({ ...inst('orders-1'), port: server.port }, { http: { path: '/health', intervalMs: 100, timeoutMs: 200 } });
    await watch.until((ids) => ids.includes('orders-1'), 3_000, 'the passing instance');
    server.setStatus(500);
    await watch.until((ids) => ids.length === 0, 3_000, 'removal on 500');
    const file = await readJson(join(dir, 'orders-1.json'));
    expect(file.checks.http).toMatchObject({ status: 'critical', url: `http://127.0.0.1:${server.port}/health` });
    expect(file.checks.http.output).toContain('500');
    server.setStatus(200);
    await watch.until((ids) => ids.includes('orders-1'), 3_000, 'return on 200');
    // A heartbeat of an HTTP-only instance only confirms the registration exists.
    await owner.heartbeat('orders-1');
    await owner.deregister('orders-1');
    await watch.until((ids) => ids.length === 0, 3_000, 'removal on deregister');
    const hits = server.hits;
    await delay(250);
    expect(server.hits).toBe(hits);
  });

  it('with both checks, both must pass', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const registry = h.open({ dir, logger: silentLogger });
    await registry.register({ ...inst('orders-1'), port: server.port }, { ttlMs: 5_000, http: { intervalMs: 50 } });
    await waitFor(async () => (await readJson(join(dir, 'orders-1.json'))).checks.http.status === 'passing', 3_000, 'HTTP pass');
    expect(await registry.list('orders')).toEqual([]);
    await registry.heartbeat('orders-1');
    expect(await registry.list('orders')).toHaveLength(1);
    server.setStatus(429);
    await waitFor(async () => (await registry.list('orders')).length === 0, 3_000, 'warning to take it out');
  });

  it('the instance leaves the healthy set when its registering process stops renewing the lease', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const owner = h.open({ dir, logger: silentLogger });
    await owner.register({ ...inst('orders-1'), port: server.port }, { http: { intervalMs: 100, timeoutMs: 100 } });
    await waitFor(async () => (await owner.list('orders')).length === 1, 3_000, 'the passing instance');
    const { expiresAt } = (await readJson(join(dir, 'orders-1.json'))).checks.http;
    // Lease: 2 * (interval + timeout) + 250 ms slack from the last written result.
    expect(expiresAt - Date.now()).toBeLessThanOrEqual(2 * 200 + 250);

    // The owner "dies": its check loop stops, its file stays behind.
    await owner.close();
    const lastExpiry = (await readJson(join(dir, 'orders-1.json'))).checks.http.expiresAt as number;
    let readerNow = lastExpiry - 1;
    const reader = h.open({ dir, logger: silentLogger, now: () => readerNow });
    expect(await reader.list('orders')).toHaveLength(1);
    readerNow = lastExpiry;
    expect(await reader.list('orders')).toEqual([]);
    expect(await readdir(dir)).toEqual(['orders-1.json']);

    // And with the real clock a watcher sees it go once the lease runs out.
    const watcher = h.open({ dir, logger: silentLogger });
    const watch = recorder(watcher, 'orders');
    await watch.until((ids) => ids.length === 0, 3_000, 'the lease to lapse');
  });

  it('does not rewrite the file on every poll while the status holds', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const registry = h.open({ dir, logger: silentLogger });
    let publishes = 0;
    const fsw = watch(dir, (_e, name) => {
      if (name === 'orders-1.json') publishes++;
    });
    h.defer(() => fsw.close());
    // Lease 2 * (20 + 5000) + 250 ms: first renewed about 5 s after the first pass.
    await registry.register({ ...inst('orders-1'), port: server.port }, { http: { intervalMs: 20, timeoutMs: 5_000 } });
    await waitFor(() => server.hits >= 20, 5_000, '20 polls');
    await delay(20);
    // One publish for register, one for the first pass; 20 unchanged results add none (at most
    // one renewal if this machine is very slow).
    expect(publishes).toBeGreaterThanOrEqual(2);
    expect(publishes).toBeLessThanOrEqual(3);
  });

  it('a check loop stops when its file disappears, and a re-registration starts a fresh one', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const registry = h.open({ dir, logger: silentLogger });
    // Lease renewals about every 330 ms: the file is removed between two writes. (An external
    // removal racing a write in flight can be undone by that write; the registrant is alive then.)
    await registry.register({ ...inst('orders-1'), port: server.port }, { http: { intervalMs: 30, timeoutMs: 300 } });
    await waitFor(async () => (await registry.list('orders')).length === 1, 3_000, 'the passing instance');
    await rm(join(dir, 'orders-1.json'));
    await expect(registry.heartbeat('orders-1')).rejects.toBeInstanceOf(NotRegisteredError);
    // The next write (a lease renewal) finds the file gone and stops polling instead of recreating it.
    await waitFor(
      async () => {
        const before = server.hits;
        await delay(150);
        return server.hits === before;
      },
      3_000,
      'polling to stop',
    );
    expect(await readdir(dir)).toEqual([]);
    await registry.register({ ...inst('orders-1'), port: server.port }, { http: { intervalMs: 30, timeoutMs: 30 } });
    await waitFor(async () => (await registry.list('orders')).length === 1, 3_000, 'the re-registered instance');
  });
});

describe('LocalRegistry warnings', () => {
  it('reports a check result it cannot write once, retries it on later polls, and never throws', async () => {
    const dir = await h.tempDir();
    const server = await healthServer();
    const logger = recordingLogger();
    const registry = h.open({ dir, logger });
    await registry.register({ ...inst('orders-1'), port: server.port }, { http: { intervalMs: 30, timeoutMs: 3_000 } });
    await waitFor(async () => (await registry.list('orders')).length === 1, 3_000, 'the passing instance');
    expect(logger.messages).toEqual([]);
    // The directory turns unsafe: every write is refused from now on.
    await chmod(dir, 0o777);
    server.setStatus(500);
    const warning = 'could not record the HTTP check result of orders-1';
    await waitFor(() => logger.count(warning) > 0, 3_000, 'the warning');
    expect(logger.messages.join('\n')).toContain('writable by group or others');
    // Every later poll retries the write, but the same failure is reported only once.
    const polls = server.hits;
    await waitFor(() => server.hits >= polls + 5, 3_000, 'more polls');
    expect(logger.count(warning)).toBe(1);
    expect((await readJson(join(dir, 'orders-1.json'))).checks.http.status).toBe('passing');

    // Once the directory is safe again, the critical status that could not be saved is written.
    await chmod(dir, 0o700);
    await waitFor(
      async () => (await readJson(join(dir, 'orders-1.json'))).checks.http.status === 'critical',
      3_000,
      'the retried write',
    );
  });
});
