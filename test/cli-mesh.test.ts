// Issue 17: the `peerlb` command line, end to end against a running `pnpm mesh` (real processes
// and sockets), on the local registry, on the Consul agent double of test/support, and on a real
// Consul agent (1.8.7, fetched by scripts/consul.sh). The built
// bin runs in a child process where the process matters (exit codes, stdout vs stderr, Ctrl-C);
// other checks run the same command in this process (`runCli`), which saves a Node start each.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runCli } from '@peerlb/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevAgent } from './support/consul-agent.js';
import { startConsulDouble, type ConsulDouble } from './support/consul-double.js';
import { startMesh, type RunningMesh } from './support/mesh-process.js';

const BIN = fileURLToPath(new URL('../packages/cli/dist/bin.js', import.meta.url));
const BACKENDS = ['catalog', 'inventory', 'orders', 'pricing'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment with no registry named: each test says which one the command uses. */
function bareEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('CONSUL_') || key.startsWith('PEERLB_')) delete env[key];
  return { ...env, ...extra };
}

function peerlb(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The same command in this process: output captured, nothing on a terminal. */
async function inProcess(args: string[], env: NodeJS.ProcessEnv, options: { tty?: boolean } = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const tty = options.tty === true;
  const code = await runCli(args, {
    stdout: { write: (text: string) => (stdout += text), isTTY: tty },
    stderr: { write: (text: string) => (stderr += text), isTTY: tty },
    env,
    signal: new AbortController().signal,
  });
  return { code, stdout, stderr };
}

function json<T>(run: Run): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
}

interface ServicesOut {
  services: { service: string; healthy: number }[];
}
interface InstancesOut {
  instances: { id: string; address: string; port: number; meta: Record<string, string> }[];
}
interface CallOut {
  status: number;
  instance: { id: string };
  attempts: number;
  timings: { headersMs: number; totalMs: number };
  body: { servedBy?: string; via?: Record<string, string> };
}
interface CountOut {
  answered: number;
  failed: number;
  byStatus: Record<string, number>;
  instances: { id: string; requests: number; share: number }[];
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

/** The checks both registries must pass, against a mesh of 2 instances per backend. */
function cliAgainst(name: string, setup: () => Promise<{ mesh: RunningMesh; env: NodeJS.ProcessEnv; cleanup(): Promise<void> }>) {
  describe(`peerlb against a running mesh: ${name}`, () => {
    let mesh: RunningMesh;
    let env: NodeJS.ProcessEnv;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ mesh, env, cleanup } = await setup());
    });
    afterAll(async () => {
      await mesh?.stop();
      await cleanup?.();
    });

    it('services and instances list what the mesh registered', async () => {
      const services = await inProcess(['services', '--json'], env);
      expect(services.code).toBe(0);
      const listed = new Map(json<ServicesOut>(services).services.map((s) => [s.service, s.healthy]));
      for (const backend of BACKENDS) expect(listed.get(backend), backend).toBe(2);
      expect(listed.get('gateway')).toBe(1);

      const text = await peerlb(['services'], env);
      expect(text.stdout).toMatch(/^SERVICE\s+HEALTHY\n/);
      expect(text.stdout).toMatch(/^catalog\s+2$/m);

      const instances = json<InstancesOut>(await inProcess(['instances', 'catalog', '--json'], env)).instances;
      expect(instances.map((i) => i.meta.label).sort()).toEqual(['catalog#1', 'catalog#2']);
      const table = await inProcess(['instances', 'catalog'], env);
      expect(table.code).toBe(0);
      for (const i of instances) expect(table.stdout).toContain(`${i.id}  ${i.address}  ${i.port}`);
    });

    it('call goes through the balancer and says which instance answered', async () => {
      const catalog = json<InstancesOut>(await inProcess(['instances', 'catalog', '--json'], env)).instances.map((i) => i.id);
      const one = await inProcess(['call', 'catalog', '/products/tea-001', '--json'], env);
      expect(one.code).toBe(0);
      const answer = json<CallOut>(one);
      expect(answer.status).toBe(200);
      expect(catalog).toContain(answer.instance.id);
      // The instance the balancer reports is the one that served (the mesh names itself in the body).
      expect(answer.body.servedBy).toBe(answer.instance.id);
      expect(answer.timings.totalMs).toBeGreaterThanOrEqual(answer.timings.headersMs);

      const text = await peerlb(['call', 'catalog', '/products/tea-001'], env);
      expect(text.code).toBe(0);
      expect(JSON.parse(text.stdout).product.sku).toBe('tea-001');
      expect(text.stderr).toMatch(new RegExp(`^200 from (${catalog.join('|')}) \\(127\\.0\\.0\\.1:\\d+\\) in [\\d.]+ ms`));

      const post = await inProcess(
        ['call', 'gateway', '/api/orders', '-X', 'POST', '-d', '{"sku":"tea-001","qty":1}', '-H', 'content-type: application/json', '--json'],
        env,
      );
      expect(json<CallOut>(post).status).toBe(201);
      expect(Object.keys(json<CallOut>(post).body.via ?? {}).sort()).toEqual(['inventory', 'orders', 'pricing']);

      const notFound = await peerlb(['call', 'catalog', '/products/no-such-sku'], env);
      expect(notFound.code).toBe(1);
      expect(notFound.stderr).toMatch(/^404 from /);
    });

    it('call --count reports the share per instance and latency percentiles', async () => {
      const catalog = json<InstancesOut>(await inProcess(['instances', 'catalog', '--json'], env)).instances.map((i) => i.id);
      const run = await inProcess(['call', 'catalog', '/products', '--count', '60', '--concurrency', '3', '--json'], env);
      expect(run.code).toBe(0);
      const out = json<CountOut>(run);
      expect([out.answered, out.failed, out.byStatus['200']]).toEqual([60, 0, 60]);
      expect(out.instances.reduce((n, i) => n + i.requests, 0)).toBe(60);
      expect(out.instances.reduce((n, i) => n + i.share, 0)).toBeCloseTo(1, 3);
      for (const i of out.instances) expect(catalog).toContain(i.id);
      const { p50, p90, p99, max } = out.latencyMs;
      expect(p50).toBeGreaterThan(0);
      expect(p50 <= p90 && p90 <= p99 && p99 <= max).toBe(true);

      const text = await inProcess(['call', 'catalog', '/products', '-n', '10'], env, { tty: true });
      expect(text.code).toBe(0);
      // On a terminal, a progress bar on stderr ends full.
      expect(text.stderr).toMatch(/\r\[#{30}\] 10\/10\n$/);
      expect(text.stdout).toMatch(/10 of 10 request\(s\)/);
      expect(text.stdout).toMatch(/^INSTANCE\s+ADDRESS\s+REQUESTS\s+SHARE$/m);
      expect(text.stdout).toMatch(/latency: min .* p50 .* p90 .* p99 .* max /);
    });

    it('a service with no instance is a clear error with its own exit code', async () => {
      const call = await peerlb(['call', 'nosuch', '/'], env);
      expect(call.code).toBe(4);
      expect(call.stderr).toMatch(/^peerlb: service "nosuch" has no healthy instance in (local|consul) \(/);
      const listed = await inProcess(['instances', 'nosuch', '--json'], env);
      expect(listed.code).toBe(4);
      expect(json<InstancesOut>(listed).instances).toEqual([]);
      const asJson = await inProcess(['call', 'nosuch', '/', '--json'], env);
      expect(json<{ error: { code: string } }>(asJson).error.code).toBe('PEERLB_NO_INSTANCES');
    });

    it('instances --watch prints each change until interrupted', async () => {
      const child = spawn(process.execPath, [BIN, 'instances', 'inventory', '--watch', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const updates: InstancesOut[] = [];
      let notify = (): void => {};
      createInterface({ input: child.stdout }).on('line', (line) => {
        updates.push(JSON.parse(line) as InstancesOut);
        notify();
      });
      const until = (pred: () => boolean, ms: number): Promise<void> =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`watch: ${JSON.stringify(updates.map((u) => u.instances.length))}`)), ms);
          notify = () => {
            if (pred()) {
              clearTimeout(timer);
              resolve();
            }
          };
          notify();
        });
      try {
        await until(() => updates.some((u) => u.instances.length === 2), 10_000);
        // SIGTERM one instance: it deregisters, and the watch shows the smaller set.
        process.kill(mesh.pids.get('inventory#1')!, 'SIGTERM');
        await until(() => updates.at(-1)?.instances.length === 1, 10_000);
        expect(updates.at(-1)!.instances[0]!.meta.label).toBe('inventory#2');
      } finally {
        child.kill('SIGINT');
      }
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code).toBe(0);
    });
  });
}

cliAgainst('local registry', async () => {
  const mesh = await startMesh({ instances: 2, web: false, env: bareEnv({}) });
  expect(mesh.registryDir).toBeTruthy();
  return { mesh, env: bareEnv({ PEERLB_REGISTRY_DIR: mesh.registryDir! }), cleanup: async () => {} };
});

cliAgainst('Consul (agent double)', async () => {
  const double: ConsulDouble = await startConsulDouble({ minCheckIntervalMs: 100 });
  const env = bareEnv({ CONSUL_HTTP_ADDR: double.url });
  const mesh = await startMesh({ instances: 2, web: false, env });
  return { mesh, env, cleanup: () => double.close() };
});

cliAgainst('Consul (real agent)', async () => {
  const agent = await startDevAgent();
  const env = bareEnv({ CONSUL_HTTP_ADDR: agent.url });
  try {
    const mesh = await startMesh({ instances: 2, web: false, env });
    return { mesh, env, cleanup: () => agent.close() };
  } catch (err) {
    await agent.close();
    throw err;
  }
});

describe('peerlb errors without a mesh', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'peerlb-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an unreachable registry is exit 3 with a message naming it', async () => {
    // Port 1 on loopback: nothing listens there.
    const consul = await peerlb(['services'], bareEnv({ CONSUL_HTTP_ADDR: 'http://127.0.0.1:1' }));
    expect(consul.code).toBe(3);
    expect(consul.stderr).toMatch(/^peerlb: cannot read the registry \(consul \(http:\/\/127\.0\.0\.1:1\)\): .*ECONNREFUSED/);
    const call = await inProcess(['call', 'catalog', '/', '--json'], bareEnv({ CONSUL_HTTP_ADDR: 'http://127.0.0.1:1' }));
    expect(call.code).toBe(3);
    expect(json<{ error: { code: string } }>(call).error.code).toBe('PEERLB_REGISTRY_UNAVAILABLE');

    const file = join(dir, 'not-a-directory');
    await writeFile(file, 'x');
    const local = await inProcess(['instances', 'catalog'], bareEnv({ PEERLB_REGISTRY_DIR: file }));
    expect(local.code).toBe(3);
    expect(local.stderr).toContain(`cannot read the registry (local (${file}))`);
  });

  it('a bad command line is exit 2 with the usage; --help is exit 0', async () => {
    const env = bareEnv({ PEERLB_REGISTRY_DIR: join(dir, 'registry') });
    const bin = await peerlb(['call', 'catalog'], env);
    expect(bin.code).toBe(2);
    expect(bin.stderr).toMatch(/^peerlb: call: missing <path>\n\nUsage: peerlb <command>/);
    for (const args of [[], ['frob'], ['call', 'catalog', 'no-slash'], ['call', 'catalog', '/', '-n', '0'], ['services', '--bogus']]) {
      const run = await inProcess(args, env);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr, args.join(' ')).toMatch(/^peerlb: .+\n\nUsage: peerlb <command>/);
    }
    const help = await inProcess(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
  });
});
