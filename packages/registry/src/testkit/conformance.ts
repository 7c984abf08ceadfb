import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from '../types.js';
import { startHealthServer, type HealthServer } from './health-server.js';
import type { ConformanceTarget, PeerRegistryConfig } from './target.js';
import { WatchRecorder } from './watch-recorder.js';

/** Discovery must show a new healthy instance this fast: the product promise, not a benchmark. */
const VISIBLE_WITHIN_MS = 1_000;

/**
 * The behaviour every `Registry` adapter must show. Call it at the top level of a vitest file:
 *
 *   registryConformance('local', { open: async () => new LocalRegistry({ dir }), ... });
 *
 * Tests that need an optional target capability are not declared when the target lacks it; a line
 * on stdout says which, so a run's log tells what was covered.
 */
export function registryConformance(name: string, target: ConformanceTarget): void {
  describe(`Registry conformance: ${name}`, () => {
    const opened: Registry[] = [];
    const cleanups: Array<() => unknown> = [];

    beforeAll(async () => {
      await target.setup?.();
    });
    afterEach(async () => {
      for (const fn of cleanups.splice(0).reverse()) await fn();
      await Promise.all(opened.splice(0).map((r) => r.close()));
    });
    afterAll(async () => {
      await target.teardown();
    });

    const open = async () => {
      const registry = await target.open();
      opened.push(registry);
      return registry;
    };
    const healthServer = async () => {
      const server = await startHealthServer();
      cleanups.push(() => server.close());
      return server;
    };
    const recorder = (registry: Registry, service: string) => {
      const rec = new WatchRecorder(registry, service);
      cleanups.push(() => rec.close());
      return rec;
    };
    const instance = (service: string, server: HealthServer, suffix = '1') => ({
      id: `${service}-${suffix}`,
      service,
      address: server.address,
      port: server.port,
      tags: ['conformance'],
      meta: { suite: 'peerlb' },
    });
    const removalBudget = (checkMs: number) => checkMs * 3 + target.settleMs + VISIBLE_WITHIN_MS;
    // Starting from an instance another client's watch already lists, a change a test then waits for
    // can only come from what the test did next.
    const registerVisible = async (service: string, ttlMs: number) => {
      const [writer, reader] = [await open(), await open()];
      const server = await healthServer();
      const watch = recorder(reader, service);
      await writer.register(instance(service, server), { ttlMs });
      await writer.heartbeat(`${service}-1`);
      await watch.until((ids) => ids.includes(`${service}-1`), VISIBLE_WITHIN_MS * 3, 'the instance');
      return { writer, server, watch };
    };

    it('shows a registered healthy instance to a watcher within 1 s, with its data intact', async () => {
      const service = uniqueService();
      const [writer, reader] = [await open(), await open()];
      const server = await healthServer();
      const watch = recorder(reader, service);
      await watch.until((ids) => ids.length === 0, VISIBLE_WITHIN_MS * 5, 'the initial empty set');

      await writer.register(instance(service, server), { ttlMs: 5_000 });
      await writer.heartbeat(`${service}-1`);
      const elapsed = await watch.until((ids) => ids.includes(`${service}-1`), VISIBLE_WITHIN_MS * 3, 'the new instance');
      expect(elapsed).toBeLessThanOrEqual(VISIBLE_WITHIN_MS);

      const listed = await reader.list(service);
      expect(listed).toEqual([
        { id: `${service}-1`, service, address: '127.0.0.1', port: server.port, tags: ['conformance'], meta: { suite: 'peerlb' } },
      ]);
    });

    it('does not serve an instance before its first check passes (checks start critical)', async () => {
      const service = uniqueService();
      const registry = await open();
      const server = await healthServer();
      await registry.register(instance(service, server), { ttlMs: 5_000 });
      expect(await registry.list(service)).toEqual([]);
    });

    it('removes an instance whose HTTP check fails, and restores it when the check passes again', async () => {
      const service = uniqueService();
      const [writer, reader] = [await open(), await open()];
      const server = await healthServer();
      const watch = recorder(reader, service);
      const intervalMs = Math.max(target.minCheckIntervalMs, 200);
      await writer.register(instance(service, server), { http: { path: '/health', intervalMs, timeoutMs: 1_000 } });
      await watch.until((ids) => ids.includes(`${service}-1`), removalBudget(intervalMs), 'the HTTP check to pass');

      server.setStatus(500);
      await watch.until((ids) => ids.length === 0, removalBudget(intervalMs), 'removal after the HTTP check failed');
      server.setStatus(200);
      await watch.until((ids) => ids.includes(`${service}-1`), removalBudget(intervalMs), 'return after recovery');
    });

    it('treats a 429 answer (warning) as not passing', async () => {
      const service = uniqueService();
      const registry = await open();
      const server = await healthServer();
      server.setStatus(429);
      const intervalMs = Math.max(target.minCheckIntervalMs, 200);
      await registry.register(instance(service, server), { http: { path: '/health', intervalMs } });
      const deadline = Date.now() + intervalMs * 2 + target.settleMs;
      while (server.hits < 2 && Date.now() < deadline) await delay(50);
      expect(server.hits).toBeGreaterThanOrEqual(1);
      expect(await registry.list(service)).toEqual([]);
    });

    it('removes an instance whose TTL lapses', async () => {
      const ttlMs = 400;
      const { watch } = await registerVisible(uniqueService(), ttlMs);
      const elapsed = await watch.until((ids) => ids.length === 0, removalBudget(ttlMs), 'the TTL to lapse');
      expect(elapsed).toBeGreaterThanOrEqual(ttlMs / 2);
    });

    it('takes an instance out when its heartbeat reports critical', async () => {
      const service = uniqueService();
      const { writer, watch } = await registerVisible(service, 5_000);
      await writer.heartbeat(`${service}-1`, { status: 'critical', note: 'health function failed' });
      await watch.until((ids) => ids.length === 0, VISIBLE_WITHIN_MS * 3, 'removal after a critical heartbeat');
    });

    it('removes a deregistered instance and reports heartbeats for it as not registered', async () => {
      const service = uniqueService();
      const { writer, watch } = await registerVisible(service, 5_000);
      await writer.deregister(`${service}-1`);
      const elapsed = await watch.until((ids) => ids.length === 0, VISIBLE_WITHIN_MS * 3, 'removal after deregister');
      expect(elapsed).toBeLessThanOrEqual(VISIBLE_WITHIN_MS);
      await expect(writer.heartbeat(`${service}-1`)).rejects.toMatchObject({ code: 'PEERLB_NOT_REGISTERED' });
      await expect(writer.deregister(`${service}-1`)).resolves.toBeUndefined();
    });

    // A real agent reaps after at least 1 min (checked every 30 s): too slow for a test run.
    const reapAfterMs = Math.max(300, target.minDeregisterCriticalAfterMs ?? 0);
    const reapTitle = 'reaps an instance that stays critical past deregisterCriticalAfterMs';
    if (reapAfterMs > 10_000) console.info(`[conformance] ${name}: "${reapTitle}" not run (the backend's minimum is ${reapAfterMs} ms)`);
    else it(reapTitle, async () => {
      const service = uniqueService();
      const registry = await open();
      const server = await healthServer();
      await registry.register(instance(service, server), { ttlMs: 200, deregisterCriticalAfterMs: reapAfterMs });
      const deadline = Date.now() + 200 + reapAfterMs + target.settleMs + 3_000;
      let forgotten = false;
      while (!forgotten && Date.now() < deadline) {
        await delay(100);
        // A heartbeat is how an instance learns it was forgotten; reporting critical keeps the
        // check critical without resetting how long it has been critical.
        forgotten = await registry.heartbeat(`${service}-1`, { status: 'critical' }).then(
          () => false,
          (err: { code?: string }) => err.code === 'PEERLB_NOT_REGISTERED',
        );
      }
      expect(forgotten).toBe(true);
    });

    it('lists the services that have a registered instance, healthy or not (services())', async () => {
      const registry = await open();
      if (registry.services === undefined) {
        process.stdout.write(`[conformance] ${name}: no services() (optional), not checked\n`);
        return;
      }
      const [critical, passing] = [uniqueService(), uniqueService()];
      const server = await healthServer();
      await registry.register(instance(critical, server), { ttlMs: 5_000 });
      await registry.register(instance(passing, server), { ttlMs: 5_000 });
      await registry.heartbeat(`${passing}-1`);
      const names = await registry.services();
      expect(names).toEqual(expect.arrayContaining([critical, passing]));
      expect(names).toEqual([...names].sort());

      await registry.deregister(`${critical}-1`);
      // A server-backed catalog may take a moment to forget a deregistered service.
      const deadline = Date.now() + target.settleMs + VISIBLE_WITHIN_MS;
      let after = await registry.services();
      while (after.includes(critical) && Date.now() < deadline) {
        await delay(50);
        after = await registry.services();
      }
      expect(after).not.toContain(critical);
      expect(after).toContain(passing);
    });

    it('applies tag and meta filters', async () => {
      const service = uniqueService();
      const registry = await open();
      const server = await healthServer();
      await registry.register({ ...instance(service, server, 'a'), tags: ['v1'], meta: { zone: 'a' } }, { ttlMs: 5_000 });
      await registry.register({ ...instance(service, server, 'b'), tags: ['v2'], meta: { zone: 'b' } }, { ttlMs: 5_000 });
      await registry.heartbeat(`${service}-a`);
      await registry.heartbeat(`${service}-b`);
      const ids = async (filter: object) => (await registry.list(service, { filter })).map((i) => i.id);
      expect(await ids({})).toEqual([`${service}-a`, `${service}-b`]);
      expect(await ids({ tags: ['v2'] })).toEqual([`${service}-b`]);
      expect(await ids({ meta: { zone: 'a' } })).toEqual([`${service}-a`]);
      expect(await ids({ tags: ['v2'], meta: { zone: 'a' } })).toEqual([]);
    });

    it('rejects bad input with typed errors naming the field', async () => {
      const registry = await open();
      const inst = { id: 'x-1', service: 'x', address: '127.0.0.1', port: 80 };
      await expect(registry.register({ ...inst, port: 0 }, { ttlMs: 1_000 })).rejects.toMatchObject({
        code: 'PEERLB_INVALID_OPTIONS',
        field: 'instance.port',
      });
      await expect(registry.register({ ...inst, service: '' }, { ttlMs: 1_000 })).rejects.toMatchObject({
        field: 'instance.service',
      });
      await expect(registry.register(inst, { ttlMs: -1 })).rejects.toMatchObject({ field: 'check.ttlMs' });
      await expect(registry.register(inst, { http: { intervalMs: 0 } })).rejects.toMatchObject({
        field: 'check.http.intervalMs',
      });
      await expect(registry.list('not a name')).rejects.toMatchObject({ field: 'service' });
      expect(() => registry.watch('', () => {})).toThrow(expect.objectContaining({ field: 'service' }));
    });

    it('an idle watch neither repeats unchanged data nor polls the backend per lookup', async () => {
      const service = uniqueService();
      const [writer, reader] = [await open(), await open()];
      const server = await healthServer();
      await writer.register(instance(service, server), { ttlMs: 10_000 });
      await writer.heartbeat(`${service}-1`);
      const watch = recorder(reader, service);
      await watch.until((ids) => ids.length === 1, VISIBLE_WITHIN_MS * 3, 'the instance');
      const updatesBefore = watch.updates.length;
      const readsBefore = target.backendReads?.();
      // Heartbeats keep the backend busy without changing the healthy set.
      for (let i = 0; i < 5; i++) {
        await delay(200);
        await writer.heartbeat(`${service}-1`);
      }
      expect(watch.updates.length).toBe(updatesBefore);
      if (readsBefore !== undefined) {
        // A blocking query may legitimately return on unrelated index bumps; a poll per lookup
        // would show as one read per 100 ms or worse.
        expect(target.backendReads!() - readsBefore).toBeLessThanOrEqual(6);
      }
    });

    itWhen(target, name, 'injectMalformed', 'skips malformed entries and keeps serving the valid ones', async () => {
      const service = uniqueService();
      const [writer, reader] = [await open(), await open()];
      const server = await healthServer();
      await writer.register(instance(service, server), { ttlMs: 10_000 });
      await writer.heartbeat(`${service}-1`);
      await target.injectMalformed!(service);
      const watch = recorder(reader, service);
      await watch.until((ids) => ids.length >= 1, VISIBLE_WITHIN_MS * 3, 'the valid instance');
      expect(watch.latestIds()).toEqual([`${service}-1`]);
      expect((await reader.list(service)).map((i) => i.id)).toEqual([`${service}-1`]);
      for (const u of watch.updates) {
        if (u.ok) for (const inst of u.instances) expect(inst.port).toBeGreaterThan(0);
      }
    });

    itWhen(target, name, 'restart', 'keeps a watcher working across a registry restart', async () => {
      const service = uniqueService();
      const { writer, server, watch } = await registerVisible(service, 10_000);

      await target.restart!();
      // The restarted registry forgot the instance; its owner finds out on the next heartbeat.
      await expect(retryUntilSettled(() => writer.heartbeat(`${service}-1`), 5_000)).rejects.toMatchObject({
        code: 'PEERLB_NOT_REGISTERED',
      });
      await watch.until((ids) => ids.length === 0, 15_000, 'the forgotten instance to disappear');
      await writer.register(instance(service, server), { ttlMs: 10_000 });
      await writer.heartbeat(`${service}-1`);
      await watch.until((ids) => ids.includes(`${service}-1`), 15_000, 'the re-registered instance');
    });

    itWhen(target, name, 'peerProcessConfig', 'lets two processes see each other', async () => {
      const service = uniqueService();
      const registry = await open();
      const server = await healthServer();
      const watch = recorder(registry, service);
      await registry.register(instance(service, server, 'parent'), { ttlMs: 10_000 });
      await registry.heartbeat(`${service}-parent`);

      const peer = startPeerProcess(target.peerProcessConfig!(), {
        id: `${service}-child`,
        service,
        address: '127.0.0.1',
        port: server.port,
      });
      cleanups.push(() => peer.kill());
      await watch.until((ids) => ids.includes(`${service}-child`), 10_000, 'the child process instance');
      await peer.waitForIds((ids) => ids.includes(`${service}-parent`) && ids.includes(`${service}-child`), 10_000);

      await peer.stop();
      await watch.until((ids) => !ids.includes(`${service}-child`), VISIBLE_WITHIN_MS * 3, 'the child to deregister');
    });
  });
}

/** Declares `body` as a test only when the target has `capability`; says so on stdout otherwise. */
function itWhen(target: ConformanceTarget, name: string, capability: keyof ConformanceTarget, title: string, body: () => Promise<void>): void {
  if (target[capability] === undefined) {
    console.info(`[conformance] ${name}: "${title}" not applicable (the target has no ${capability})`);
    return;
  }
  it(title, body);
}

function uniqueService(): string {
  return `conf-${randomBytes(4).toString('hex')}`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Retries a call that fails with a registry-unavailable error (the backend may still be starting). */
async function retryUntilSettled(fn: () => Promise<unknown>, timeoutMs: number): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as { code?: string }).code !== 'PEERLB_REGISTRY_UNAVAILABLE' || Date.now() > deadline) throw err;
      await delay(100);
    }
  }
}

interface PeerProcess {
  waitForIds(predicate: (ids: string[]) => boolean, timeoutMs: number): Promise<void>;
  /** SIGTERM: the peer deregisters and exits. */
  stop(): Promise<void>;
  kill(): void;
}

function peerProcessCommand(): { file: string; execArgv: string[] } {
  const here = import.meta.url;
  // From source (the repo's own tests) the script is TypeScript and runs through tsx.
  if (here.endsWith('.ts')) {
    return { file: fileURLToPath(new URL('./peer-process.ts', here)), execArgv: ['--import', 'tsx'] };
  }
  return { file: fileURLToPath(new URL('./peer-process.js', here)), execArgv: [] };
}

function startPeerProcess(
  config: PeerRegistryConfig,
  inst: { id: string; service: string; address: string; port: number },
): PeerProcess {
  const { file, execArgv } = peerProcessCommand();
  const child: ChildProcess = spawn(process.execPath, [...execArgv, file, JSON.stringify({ config, instance: inst })], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let latest: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const msg = JSON.parse(line) as { event: string; ids?: string[] };
      if (msg.event === 'update' && msg.ids) latest = msg.ids;
    } catch {
      return;
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    waitForIds(predicate, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (predicate(latest)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`peer process never saw the expected ids; latest ${JSON.stringify(latest)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
