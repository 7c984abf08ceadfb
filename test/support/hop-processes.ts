import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HOP_SCRIPT = fileURLToPath(new URL('../fixtures/deadline-hop.mjs', import.meta.url));

export interface HopConfig {
  service: string;
  next?: string;
  workMs?: number;
  slowShare?: number;
  slowMs?: number;
  hedge?: unknown;
  propagateDeadline?: boolean;
  clientTimeoutMs?: number;
  balancer?: 'round-robin';
}

export interface HopStats {
  id: string;
  counters: {
    started: number;
    completed: number;
    stoppedByDeadline: number;
    budgetsSeenMs: Array<number | null>;
    workAfterDeadlineMs: number;
  };
  serving: { deadline?: { withDeadline: number; expired: number; cancelled: number; late: number } };
  client: { services: Record<string, Record<string, unknown> & { peers: Array<{ id: string; inFlight: number }> }> };
}

/** A hop process (test/fixtures/deadline-hop.mjs) registered in the shared local registry. */
export class Hop {
  constructor(
    readonly child: ChildProcess,
    readonly id: string,
    readonly url: string,
  ) {}

  async stats(): Promise<HopStats> {
    const res = await fetch(`${this.url}/stats`, { signal: AbortSignal.timeout(5_000) });
    return (await res.json()) as HopStats;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

/** A local registry directory and the hop processes started on it; `close()` ends them all. */
export class HopMesh {
  private readonly hops: Hop[] = [];

  private constructor(
    readonly dir: string,
    private readonly parent: string,
  ) {}

  static async create(): Promise<HopMesh> {
    const parent = await mkdtemp(join(tmpdir(), 'peerlb-hops-'));
    return new HopMesh(join(parent, 'registry'), parent);
  }

  async start(config: HopConfig): Promise<Hop> {
    const child = fork(HOP_SCRIPT, [JSON.stringify({ ...config, dir: this.dir })], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const ready = await new Promise<{ id: string; url: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${config.service}: not ready within 30 s`)), 30_000);
      child.once('message', (m: { type?: string; id: string; url: string }) => {
        clearTimeout(timer);
        if (m?.type === 'ready') resolve(m);
        else reject(new Error(`${config.service}: ${JSON.stringify(m)}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${config.service} exited (${code}) before it was ready`));
      });
    });
    const hop = new Hop(child, ready.id, ready.url);
    this.hops.push(hop);
    return hop;
  }

  async close(): Promise<void> {
    await Promise.all(this.hops.splice(0).map((h) => h.stop()));
    await rm(this.parent, { recursive: true, force: true });
  }
}
