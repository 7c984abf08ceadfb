import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const INSTANCE = fileURLToPath(new URL('../fixtures/instance.mjs', import.meta.url));
const LOADGEN = fileURLToPath(new URL('../fixtures/loadgen.mjs', import.meta.url));

export type RegistryRef =
  | { kind: 'local'; dir: string }
  | { kind: 'consul'; address: string; token?: string }
  /** The instance calls registryFromEnv(): give it CONSUL_HTTP_ADDR (and the rest) in its environment. */
  | { kind: 'env' };

/** Every child this test file started, so `killAll()` in `afterAll` leaves none behind, pass or fail. */
const children = new Set<ChildProcess>();

export async function killAll(): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      children.delete(child);
    }),
  );
}

function spawn(script: string, arg: unknown, execArgv: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  // The children reach the registry they are given and no other.
  delete childEnv.CONSUL_HTTP_ADDR;
  delete childEnv.CONSUL_HTTP_TOKEN;
  delete childEnv.PEERLB_REGISTRY_DIR;
  Object.assign(childEnv, env);
  const child = fork(script, [JSON.stringify(arg)], { env: childEnv, execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export interface InstanceConfig {
  service: string;
  registry: RegistryRef;
  ledger: string;
  check?: { ttlMs?: number; http?: { intervalMs: number }; deregisterCriticalAfterMs?: number };
  drainMs?: number;
  tls?: { key: string; cert: string };
}

/** A service instance process (fixtures/instance.mjs). */
export class Instance {
  readonly child: ChildProcess;
  readonly ready: Promise<{ id: string; port: number }>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly events: string[] = [];
  output = '';
  id: string | undefined;
  port: number | undefined;

  constructor(config: InstanceConfig, env: NodeJS.ProcessEnv = {}) {
    this.child = spawn(INSTANCE, config, [], env);
    const collect = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (m: { type: string; id?: string; port?: number; name?: string; message?: string }) => {
        if (m.type === 'ready') {
          this.id = m.id!;
          this.port = m.port!;
          resolve({ id: m.id!, port: m.port! });
        } else if (m.type === 'failed') reject(new Error(`instance failed to start: ${m.message}`));
        else if (m.type === 'event') this.events.push(m.name!);
      });
      void this.exited.then(({ code, signal }) => reject(new Error(`instance exited before ready (${code ?? signal}): ${this.output}`)));
    });
    this.ready.catch(() => {});
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }
}

export interface LoadConfig {
  service: string;
  registry: RegistryRef;
  concurrency: number;
  pauseMs: number;
  /** Every n-th request is a POST /charge (0: none). */
  postEvery: number;
  warmUpMs: number;
  maxDurationMs: number;
  maxRequests: number;
  /** Where the ids of acknowledged POSTs are written at the end. */
  ackFile?: string;
  client?: Record<string, unknown>;
}

export interface Failure {
  code?: string | null;
  message?: string;
  cause?: string | null;
  status?: number;
}

export interface LoadReport {
  durationMs: number;
  sent: number;
  get: { ok: number; failed: number; failures: Failure[] };
  post: { ok: number; failed: number; failures: Failure[] };
  retries: number;
  staleEvents: number;
  stats: { stale: boolean; requests: number; failures: number; retries: number; peers: unknown[] } | null;
  heapWarm: number;
  heapEnd: number;
  resourcesBefore: Record<string, number>;
  resourcesAfter: Record<string, number>;
  leaked: Record<string, number>;
  warnings: string[];
}

export interface ServiceStatsLite {
  stale: boolean;
  expired: boolean;
  emptyPending: boolean;
  eligiblePeers: number;
  lastError?: string;
  peers: Array<{ id: string }>;
}

/** The load generator process (fixtures/loadgen.mjs), run with --expose-gc. */
export class LoadGenerator {
  readonly child: ChildProcess;
  readonly warm: Promise<{ heapUsed: number; requests: number }>;
  readonly done: Promise<LoadReport>;
  output = '';
  private statsWaiters: Array<(stats: ServiceStatsLite | null) => void> = [];

  constructor(config: LoadConfig) {
    // A 1 MB young generation keeps heap readings steady (see settledHeap in loadgen.mjs).
    this.child = spawn(LOADGEN, config, ['--expose-gc', '--max-semi-space-size=1']);
    const collect = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    this.child.stdout?.on('data', collect);
    this.child.stderr?.on('data', collect);
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.warm = new Promise((resolve, reject) => {
      this.child.on('message', (m: { type: string; heapUsed?: number; requests?: number }) => {
        if (m.type === 'warm') resolve({ heapUsed: m.heapUsed!, requests: m.requests! });
      });
      void exited.then(() => reject(new Error(`load generator exited during warm-up: ${this.output}`)));
    });
    this.done = new Promise((resolve, reject) => {
      this.child.on('message', (m: { type: string; report?: LoadReport; stats?: ServiceStatsLite | null }) => {
        if (m.type === 'done') resolve(m.report!);
        if (m.type === 'stats') this.statsWaiters.shift()?.(m.stats ?? null);
      });
      void exited.then(() => reject(new Error(`load generator exited without a report: ${this.output}`)));
    });
    this.warm.catch(() => {});
    this.done.catch(() => {});
  }

  /** The client's stats for the service, from inside the load generator. */
  stats(): Promise<ServiceStatsLite | null> {
    return new Promise((resolve) => {
      this.statsWaiters.push(resolve);
      this.child.send({ type: 'stats' });
    });
  }

  stop(): void {
    if (this.child.connected) this.child.send({ type: 'stop' });
  }
}

/** mulberry32: a small seeded PRNG, so a churn schedule can be replayed from its seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export { sleep, waitFor } from '../../support/wait.js';
