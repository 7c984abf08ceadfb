import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { silentLogger, type LocalRegistry } from '../src/index.js';
import { WatchRecorder } from '../src/testkit/watch-recorder.js';
import { localHarness, waitFor } from './fixtures/local-helpers.js';

const h = localHarness();
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));
const peerScript = fileURLToPath(new URL('./fixtures/local-peer.ts', import.meta.url));

interface Peer {
  readonly child: ChildProcess;
  readonly ready: Promise<{ pid: number; port: number }>;
  readonly exited: Promise<void>;
}

/** Spawns fixtures/local-peer.ts in its own Node process (through tsx, from the repo root). */
function startPeer(config: Record<string, unknown>): Peer {
  const child = spawn(process.execPath, ['--import', 'tsx', peerScript, JSON.stringify(config)], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<{ pid: number; port: number }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: { event?: string; pid: number; port: number };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.event === 'ready') resolve(msg);
    });
    child.once('exit', (code, signal) => reject(new Error(`peer exited before ready (${code ?? signal})`)));
  });
  h.defer(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, ready, exited };
}

function recorder(registry: LocalRegistry, service: string) {
  const rec = new WatchRecorder(registry, service);
  h.defer(() => rec.close());
  return rec;
}

describe('LocalRegistry across OS processes', () => {
  it('sees an instance registered by another process, and loses it when that process is SIGKILLed (TTL lapse, then reaped)', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    const watch = recorder(registry, 'orders');
    await watch.until((ids) => ids.length === 0, 2_000, 'the initial empty set');

    const peer = startPeer({ dir, id: 'orders-child', service: 'orders', check: 'ttl', ttlMs: 300, deregisterCriticalAfterMs: 300 });
    const { pid } = await peer.ready;
    expect(pid).not.toBe(process.pid);
    await watch.until((ids) => ids.includes('orders-child'), 3_000, 'the child instance');

    peer.child.kill('SIGKILL');
    await peer.exited;
    await watch.until((ids) => ids.length === 0, 3_000, 'the TTL of the dead child to lapse');
    // Nobody deregistered it: the watcher's rescans reap the file once it is critical for 300 ms.
    await waitFor(async () => (await readdir(dir)).length === 0, 3_000, 'the file to be reaped');
  });

  it('an HTTP-checked instance of a killed process leaves once its check lease lapses', async () => {
    const dir = await h.tempDir();
    const registry = h.open({ dir, logger: silentLogger });
    const watch = recorder(registry, 'orders');
    const peer = startPeer({ dir, id: 'orders-http', service: 'orders', check: 'http' });
    await peer.ready;
    // The child polls its own server; the first passing result makes it visible here.
    await watch.until((ids) => ids.includes('orders-http'), 3_000, 'the child instance');

    peer.child.kill('SIGKILL');
    await peer.exited;
    await watch.until((ids) => ids.length === 0, 3_000, 'the lease to lapse');
    // Its file is still there: the lapse, not a deregistration, took it out.
    expect(await readdir(dir)).toEqual(['orders-http.json']);
  });
});
