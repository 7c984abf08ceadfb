// Issue 12 items 11 and 12, against the live mesh as a user runs it: `pnpm mesh | tee mesh.log`.
// The built CLI runs in its own process group with its stdout piped into a real `tee`; Ctrl-C is
// SIGINT to both, as a terminal sends it to its foreground group.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './support/wait.js';

const CLI = fileURLToPath(new URL('../examples/mesh/dist/cli.js', import.meta.url));

let dir: string;
let reader: ChildProcess | undefined;
let mesh: ChildProcess | undefined;
let meshExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
let meshStderr = '';
let gatewayUrl: URL;
const pids = new Set<number>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killGroup(child: ChildProcess | undefined): void {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function logText(): string {
  try {
    return readFileSync(join(dir, 'mesh.log'), 'utf8');
  } catch {
    return '';
  }
}

/** GET `path` at the gateway from the local address `from` (any 127.x reaches 127.0.0.1 on Linux). */
function get(path: string, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, gatewayUrl), { localAddress: from, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: build first (pnpm exec tsc -b)`).toBe(true);
  dir = await mkdtemp(join(tmpdir(), 'peerlb-mesh-faults-'));
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir };
  delete env.CONSUL_HTTP_ADDR;
  delete env.PEERLB_REGISTRY_DIR;
  // The reader: a real tee, in its own process group like a shell pipeline's last stage.
  reader = spawn('tee', [join(dir, 'mesh.log')], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  mesh = spawn(
    process.execPath,
    [CLI, '--instances', '1', '--port', '0', '--ports', '0', '--drain-ms', '300', '--user-rate', '1'],
    { env, stdio: ['ignore', reader.stdin!, 'pipe'], detached: true },
  );
  // Only tee and the mesh hold the pipe now: when tee dies, the mesh's writes fail with EPIPE.
  reader.stdin!.destroy();
  mesh.stderr!.on('data', (chunk: Buffer) => {
    meshStderr += chunk.toString();
  });
  meshExit = new Promise((resolve) => mesh!.once('exit', (code, signal) => resolve({ code, signal })));
  await waitFor(
    () => /gateway: (http:\/\/\S+)/.test(logText()) || mesh!.exitCode !== null,
    45_000,
    'the mesh to print its gateway URL',
  );
  const match = /gateway: (http:\/\/\S+)/.exec(logText());
  expect(match, `mesh output:\n${logText()}\nstderr:\n${meshStderr}`).not.toBeNull();
  gatewayUrl = new URL(match![1]!);
  for (const m of logText().matchAll(/started pid=(\d+)/g)) pids.add(Number(m[1]));
}, 60_000);

afterAll(async () => {
  killGroup(mesh);
  killGroup(reader);
  for (const pid of pids) {
    try {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('pnpm mesh | tee (issue 12)', () => {
  it('gives each anonymous caller address its own rate-limit bucket at the gateway (item 12)', async () => {
    // One request a second per user: 127.0.0.2 empties its bucket...
    let firstLimited = false;
    for (let i = 0; i < 10 && !firstLimited; i++) firstLimited = (await get('/api/products/tea-001', '127.0.0.2')) === 429;
    expect(firstLimited).toBe(true);
    // ...which must not refuse another anonymous caller at another address, right after.
    expect(await get('/api/products/tea-001', '127.0.0.3')).toBe(200);
    // A named user still has a bucket of its own, whatever the address.
    expect(await get('/api/products/tea-001?user=alice', '127.0.0.2')).toBe(200);
  });

  it('shuts down cleanly on Ctrl-C although the pipe reader died: exit 0, no process, no registration, no temp folder (item 11)', async () => {
    const temp = readdirSync(dir).filter((n) => n.startsWith('peerlb-mesh-'));
    expect(temp).toHaveLength(1);
    // A terminal's Ctrl-C: SIGINT to every process of the foreground pipeline.
    process.kill(-reader!.pid!, 'SIGINT');
    process.kill(-mesh!.pid!, 'SIGINT');
    const exit = await meshExit;
    expect({ exit, stderr: meshStderr.slice(-1_000) }, meshStderr.slice(-1_000)).toMatchObject({ exit: { code: 0, signal: null } });
    for (const pid of pids) expect(alive(pid), `instance pid ${pid} still runs`).toBe(false);
    // The run's registry folder (and every registration in it) is gone.
    expect(readdirSync(dir).filter((n) => n.startsWith('peerlb-mesh-'))).toEqual([]);
  }, 60_000);
});
