// Issue 12 items 3-5: signals during start-up, a health function that throws, and the drain that
// ends once it is provably done. Each instance runs in its own process (fixtures/
// registration-fault-instance.mjs) against a local registry directory shared with this process.
import { fork, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalRegistry, silentLogger } from '@peerlb/registry';
import { get } from './fixtures/registration-harness.js';
import { sleep, waitFor } from './support/wait.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/registration-fault-instance.mjs', import.meta.url));

interface Message {
  type: string;
  name?: string;
  at?: number;
  n?: number;
  detail?: unknown;
}

class Instance {
  readonly child: ChildProcess;
  readonly messages: Message[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';

  constructor(readonly config: Record<string, unknown>) {
    this.child = fork(SCRIPT, [JSON.stringify(config)], { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    this.child.stderr!.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.child.on('message', (m: Message) => this.messages.push(m));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  has(type: string, name?: string): boolean {
    return this.messages.some((m) => m.type === type && (name === undefined || m.name === name));
  }

  events(name: string): Message[] {
    return this.messages.filter((m) => m.type === 'event' && m.name === name);
  }

  describe(): string {
    return JSON.stringify({ messages: this.messages, stderr: this.stderr.slice(-2_000) });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

let parent: string;
let dir: string;
let reader: LocalRegistry;
const running: Instance[] = [];
let serial = 0;

function launch(config: Record<string, unknown>): Instance {
  serial++;
  const instance = new Instance({ service: `faults-${serial}`, id: `faults-${serial}-a`, dir, ...config });
  running.push(instance);
  return instance;
}

function recordExists(id: string): Promise<boolean> {
  return access(join(dir, `${encodeURIComponent(id)}.json`)).then(
    () => true,
    () => false,
  );
}

beforeAll(async () => {
  parent = await mkdtemp(join(tmpdir(), 'peerlb-registration-faults-'));
  dir = join(parent, 'registry');
  reader = new LocalRegistry({ dir, rescanIntervalMs: 100, logger: silentLogger });
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((i) => i.stop()));
});
afterAll(async () => {
  await reader.close();
  await rm(parent, { recursive: true, force: true });
});

describe('startService start-up and shutdown faults (issue 12)', () => {
  it('SIGTERM during the first health() call leaves no registration and sends no passing heartbeat (item 3)', async () => {
    const instance = launch({ health: 'hang-first', hangMs: 1_500 });
    const id = String(instance.config.id);
    await waitFor(() => instance.has('health-called'), 15_000, 'the first health() call', () => instance.describe());
    // Registered (critical, as every check starts), asking its health function: now the signal.
    expect(await recordExists(id)).toBe(true);
    instance.child.kill('SIGTERM');
    const exit = await instance.exited;
    expect(exit, instance.describe()).toEqual({ code: 0, signal: null });
    expect(instance.has('ready')).toBe(false);
    expect(instance.events('registered')).toEqual([]);
    expect(await recordExists(id)).toBe(false);
    expect(await reader.list(String(instance.config.service))).toEqual([]);
  });

  it('SIGINT at every moment of start-up leaves no registration behind (item 3)', async () => {
    // From before the registry is opened to after the first heartbeat: each delay lands in another step.
    for (const delayMs of [0, 40, 80, 150, 300, 600]) {
      const instance = launch({ health: 'ok' });
      await sleep(delayMs);
      instance.child.kill('SIGINT');
      const exit = await instance.exited;
      // Killed outright when the signal beat its handlers (nothing is registered before they are
      // installed); else a clean exit.
      const clean = exit.code === 0 || (exit.code === null && exit.signal === 'SIGINT');
      expect(clean, `delay ${delayMs}: ${JSON.stringify(exit)} ${instance.describe()}`).toBe(true);
      expect(await recordExists(String(instance.config.id)), `delay ${delayMs}: ${instance.describe()}`).toBe(false);
    }
  });

  it('a health function that throws is reported: an error event and one log line, also at start-up, not once per beat (item 4)', async () => {
    const instance = launch({ health: 'throw', heartbeatIntervalMs: 100, ttlMs: 1_000 });
    await waitFor(() => instance.has('ready') || instance.has('failed'), 15_000, 'start-up', () => instance.describe());
    // The first call is during start-up, before the handle exists: seen through the `on` option.
    const first = instance.events('error')[0];
    expect(first, instance.describe()).toBeDefined();
    expect(instance.messages.indexOf(first!)).toBeLessThan(instance.messages.findIndex((m) => m.type === 'ready'));
    expect(JSON.stringify(first!.detail)).toContain('database unreachable');
    expect((first!.detail as { code?: string }).code).toBe('PEERLB_HEALTH_CHECK_FAILED');
    // Many beats later: still one report (rate-limited), in the log too.
    await waitFor(() => instance.messages.filter((m) => m.type === 'health-called').length >= 15, 15_000, '15 health calls');
    expect(instance.events('error')).toHaveLength(1);
    const logged = instance.stderr.split('\n').filter((l) => l.includes('database unreachable'));
    expect(logged, instance.stderr).toHaveLength(1);
    expect(logged[0]).toContain(String(instance.config.id));
  });

  it('the drain ends early when nothing is in flight, but not before callers had time to see the removal (item 5)', async () => {
    const instance = launch({ health: 'ok', drainMs: 8_000 });
    await waitFor(() => instance.has('ready'), 15_000, 'start-up', () => instance.describe());
    const signalledAt = Date.now();
    instance.child.kill('SIGTERM');
    const exit = await instance.exited;
    const exitedAt = Date.now();
    expect(exit, instance.describe()).toEqual({ code: 0, signal: null });
    const deregisteredAt = instance.events('deregistered')[0]?.at;
    expect(deregisteredAt, instance.describe()).toBeDefined();
    // Kept serving for the propagation window (default 1 s) after the registry confirmed...
    expect(exitedAt - deregisteredAt!).toBeGreaterThanOrEqual(950);
    // ...and not the whole 8 s drain (generous: this machine is shared).
    expect(exitedAt - signalledAt).toBeLessThan(6_000);
    expect(await recordExists(String(instance.config.id))).toBe(false);
  });

  it('a request in flight keeps the drain going until it is answered, then it ends (item 5)', async () => {
    const instance = launch({ health: 'ok', drainMs: 10_000 });
    await waitFor(() => instance.has('ready'), 15_000, 'start-up', () => instance.describe());
    const url = String(instance.messages.find((m) => m.type === 'ready')!['url' as keyof Message]);
    const signalledAt = Date.now();
    let answeredAt = 0;
    const slow = get(`${url}/slow?delay=2500`, 15_000).then((body) => {
      answeredAt = Date.now();
      return body;
    });
    await sleep(150);
    instance.child.kill('SIGTERM');
    expect(await slow).toMatch(/^ok /);
    const exit = await instance.exited;
    const exitedAt = Date.now();
    expect(exit, instance.describe()).toEqual({ code: 0, signal: null });
    expect(exitedAt).toBeGreaterThanOrEqual(answeredAt);
    expect(exitedAt - signalledAt).toBeLessThan(8_000);
  });
});
