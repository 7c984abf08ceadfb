// Issue 5: `pnpm mesh --demo` runs in CI. The demo is run as a user runs it (a child process, the
// built example, the embedded local registry) with 2 instances per backend, and its JSON summary is
// checked: no failed GET while instances are killed, stopped, added and slowed, and no process or
// registration left behind. Issue 11: the same run with CONSUL_HTTP_ADDR pointing at a real Consul
// agent (1.8.7, `consul agent -dev`, started here).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startDevAgent, type DevAgent } from './support/consul-agent.js';

const CLI = fileURLToPath(new URL('../examples/mesh/dist/cli.js', import.meta.url));
// The demo bounds itself (about 45 s here); this is only the backstop.
const RUN_TIMEOUT_MS = 120_000;

interface Summary {
  ok: boolean;
  error: string | null;
  registry: string;
  instancesPerService: number;
  load: { sent: number; ok: number; failed: number; failures: string[] } | null;
  distribution: Record<string, { before: { id: string; requests: number }[]; after: { id: string; requests: number }[] }>;
  killed: { id: string; attemptsAfter: number | null; trafficStoppedAfterMs: number | null; outOfPickerAfterMs: number | null } | null;
  stopped: { id: string; exit: string; removedAfterMs: number | null } | null;
  added: { id: string; firstRequestAfterMs: number | null; shareAfter: number | null } | null;
  slowed: { id: string; shareBefore: number | null; shareAfter: number | null } | null;
  rateLimit: { limited: number; retryAfterMs: { min: number; max: number } | null } | null;
  shutdown: { code: number; leftoverPids: number[]; registryLeft: string[]; problems: string[] } | null;
  processes: { label: string; pid: number | undefined }[];
  checks: { name: string; ok: boolean; detail: string }[];
}

const pids = new Set<number>();
let demo: ChildProcess | undefined;
let dir: string | undefined;
let agent: DevAgent | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

afterAll(async () => {
  // Whatever happened, nothing outlives the test: the demo's process group, then every instance
  // it reported (instances run in their own process groups).
  if (demo?.pid !== undefined && demo.exitCode === null && demo.signalCode === null) {
    try {
      process.kill(-demo.pid, 'SIGKILL');
    } catch {
      killQuietly(demo.pid);
    }
  }
  for (const pid of pids) if (alive(pid)) killQuietly(pid);
  if (dir) await rm(dir, { recursive: true, force: true });
  await agent?.close();
});

/** Runs the demo with `registryEnv` as its registry set-up and checks its summary. */
async function runDemo(registryEnv: Record<string, string>, registry: string): Promise<void> {
  expect(existsSync(CLI), `${CLI} is missing: build first (pnpm exec tsc -b)`).toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'peerlb-mesh-demo-'));
  const summaryPath = join(dir, 'summary.json');
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.CONSUL_HTTP_ADDR;
  delete env.CONSUL_HTTP_TOKEN;
  delete env.PEERLB_REGISTRY_DIR;
  Object.assign(env, registryEnv);

  const output: string[] = [];
  const child = spawn(
    process.execPath,
    [CLI, '--demo', '--instances', '2', '--port', '0', '--summary-json', summaryPath],
    { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  demo = child;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      output.push(line);
      for (const m of line.matchAll(/started pid=(\d+)/g)) pids.add(Number(m[1]));
    });
  }
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const timer = setTimeout(() => {
      output.push(`(test: no exit after ${RUN_TIMEOUT_MS} ms, killing the demo)`);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, RUN_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  const tail = `\n--- demo output (last 60 lines) ---\n${output.slice(-60).join('\n')}`;

  expect(existsSync(summaryPath), `no summary written${tail}`).toBe(true);
  const summary = JSON.parse(await readFile(summaryPath, 'utf8')) as Summary;
  for (const p of summary.processes) if (p.pid !== undefined) pids.add(p.pid);

  expect(summary.checks.filter((c) => !c.ok), tail).toEqual([]);
  expect(summary.error, tail).toBeNull();
  expect(exit, tail).toEqual({ code: 0, signal: null });
  expect(summary.ok).toBe(true);
  expect(summary.registry).toBe(registry);
  expect(summary.instancesPerService).toBe(2);

  // The load ran and no GET failed.
  expect(summary.load?.failed, summary.load?.failures.join('\n')).toBe(0);
  expect(summary.load?.sent).toBeGreaterThan(500);
  expect(summary.load?.ok).toBe(summary.load?.sent);

  // Traffic really was balanced: both instances of every backend served before the events.
  for (const [service, d] of Object.entries(summary.distribution)) {
    expect(d.before.filter((s) => s.requests > 0).length, `${service} before`).toBe(2);
  }

  // The SIGKILLed instance: gone from the gateway's traffic and view, and nothing after it.
  expect(summary.killed?.trafficStoppedAfterMs).not.toBeNull();
  expect(summary.killed?.outOfPickerAfterMs).not.toBeNull();
  expect(summary.distribution.catalog?.after.some((s) => s.id === summary.killed?.id)).toBe(false);
  // The SIGTERMed one: deregistered, drained, exit 0.
  expect(summary.stopped?.exit).toBe('exit code 0');
  expect(summary.stopped?.removedAfterMs).not.toBeNull();
  // The new one got requests; the slow one lost most of its traffic.
  expect(summary.added?.firstRequestAfterMs).not.toBeNull();
  expect(summary.added?.shareAfter).toBeGreaterThan(0);
  expect(summary.slowed?.shareBefore).toBeGreaterThan(0);
  expect(summary.slowed?.shareAfter).toBeLessThanOrEqual(0.25); // half an even share of 2
  // The per-user rate limit showed, with the time to wait.
  expect(summary.rateLimit?.limited).toBeGreaterThan(0);
  expect(summary.rateLimit?.retryAfterMs?.min).toBeGreaterThan(0);

  // Clean shutdown: verified by the demo, and here again independently.
  expect(summary.shutdown).toMatchObject({ code: 0, leftoverPids: [], registryLeft: [], problems: [] });
  expect(pids.size).toBeGreaterThanOrEqual(4 * 2 + 2); // every backend instance, the gateway, the new one
  expect([...pids].filter(alive)).toEqual([]);
  await rm(dir, { recursive: true, force: true });
  pids.clear();
}

describe('pnpm mesh --demo (issue 5)', () => {
  it(
    'answers every GET while instances are killed, stopped, added and slowed, and leaves nothing behind',
    // The embedded local registry, as on a fresh machine.
    () => runDemo({}, 'local'),
    RUN_TIMEOUT_MS + 10_000,
  );

  it(
    'does the same with CONSUL_HTTP_ADDR pointing at a real Consul agent',
    async () => {
      agent = await startDevAgent();
      await runDemo({ CONSUL_HTTP_ADDR: agent.url }, 'consul');
    },
    RUN_TIMEOUT_MS + 40_000,
  );
});
