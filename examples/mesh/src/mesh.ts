import { fileURLToPath } from 'node:url';
import type { CliArgs } from './args.js';
import { InstanceProcess, describeExit, type ExitInfo } from './instance-process.js';
import { BACKENDS, type InstanceConfig, type ServiceName } from './protocol.js';
import type { RegistryEnv } from './registry-env.js';

const INSTANCE_SCRIPT = fileURLToPath(new URL('./instance.js', import.meta.url));
const PRIMARY_SCRIPT = fileURLToPath(new URL('./instance-primary.js', import.meta.url));

export interface MeshOptions {
  /** Instances of each backend. */
  instances: number;
  /** The gateway's first port to try (then the next ones); 0: an ephemeral port. */
  gatewayPort: number;
  /** Where backends look for a port; undefined: ephemeral ports. */
  portRange: { start: number; end: number } | undefined;
  drainMs: number;
  userRatePerSec: number;
  ewmaDecayMs: number;
  /** node:cluster workers per backend instance (1: none). */
  workers?: number;
  /** The instances' environment: it names the registry. */
  env: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  /** Something happened worth a line: an instance started, stopped, failed. */
  onEvent?: (message: string) => void;
  /** Every output line of every instance. */
  onLine?: (proc: InstanceProcess, line: string, stream: 'stdout' | 'stderr') => void;
}

export interface StoppedInstance {
  label: string;
  service: ServiceName;
  id: string | undefined;
  pid: number | undefined;
  /** How it ended: `exit code 0`, `killed by SIGKILL`, ... */
  exit: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Signals the supervisor sent it over its life. */
  signalsSent: NodeJS.Signals[];
}

export interface StopReport {
  instances: StoppedInstance[];
  /** SIGTERMed at the end, then had to be SIGKILLed because they did not exit in time. */
  forceKilled: string[];
  /** Pids still alive after everything: must be empty. */
  leftoverPids: number[];
  durationMs: number;
}

/** Every process of the mesh, started and stopped by the supervisor. */
export class Mesh {
  readonly procs: InstanceProcess[] = [];
  gateway: InstanceProcess | undefined;
  private readonly started = new Map<ServiceName, number>();
  private stopping: Promise<StopReport> | undefined;

  constructor(private readonly options: MeshOptions) {}

  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  /** Starts every backend instance, then the gateway; resolves when all are registered. */
  async start(): Promise<void> {
    const backends: InstanceProcess[] = [];
    for (const service of BACKENDS) {
      for (let i = 0; i < this.options.instances; i++) backends.push(this.spawn(service));
    }
    await Promise.all(backends.map((p) => p.ready));
    this.gateway = this.spawn('gateway');
    await this.gateway.ready;
  }

  /** One more instance of `service`, in its own process. */
  spawn(service: ServiceName): InstanceProcess {
    if (this.stopping) throw new Error('the mesh is stopping');
    const n = (this.started.get(service) ?? 0) + 1;
    this.started.set(service, n);
    const label = service === 'gateway' ? 'gateway' : `${service}#${n}`;
    const config: InstanceConfig = {
      service,
      label,
      drainMs: this.options.drainMs,
      userRatePerSec: this.options.userRatePerSec,
      ewmaDecayMs: this.options.ewmaDecayMs,
      ...(service !== 'gateway' && (this.options.workers ?? 1) > 1 ? { workers: this.options.workers } : {}),
      ...(service === 'gateway'
        ? { port: this.options.gatewayPort }
        : this.options.portRange
          ? { portRange: this.options.portRange }
          : { port: 0 }),
    };
    const proc = new InstanceProcess({
      script: config.workers !== undefined ? PRIMARY_SCRIPT : INSTANCE_SCRIPT,
      config,
      env: this.options.env,
      readyTimeoutMs: this.options.readyTimeoutMs ?? 30_000,
      ...(this.options.onLine ? { onLine: (line, stream) => this.options.onLine?.(proc, line, stream) } : {}),
    });
    this.procs.push(proc);
    this.options.onEvent?.(`${label}: started pid=${proc.pid ?? '?'}`);
    proc.ready.then(
      (info) => this.options.onEvent?.(`${label}: registered as ${info.id} at ${info.url}`),
      (err: unknown) => this.options.onEvent?.(`${label}: ${(err as Error).message}`),
    );
    void proc.exited.then((exit) => this.options.onEvent?.(`${label}: ${describeExit(exit)}`));
    return proc;
  }

  byLabel(label: string): InstanceProcess | undefined {
    return this.procs.find((p) => p.label === label);
  }

  /**
   * Stops every instance that still runs: SIGTERM (each deregisters, drains, exits), then waits;
   * what is still running after `timeoutMs` is SIGKILLed. Then checks that no pid is left.
   */
  stop(timeoutMs: number): Promise<StopReport> {
    this.stopping ??= this.stopAll(timeoutMs);
    return this.stopping;
  }

  /** Last resort when the supervisor itself is going down hard: SIGKILL everything, now. */
  killAllNow(): void {
    for (const p of this.procs) p.kill('SIGKILL');
  }

  private async stopAll(timeoutMs: number): Promise<StopReport> {
    const startedAt = Date.now();
    const running = this.procs.filter((p) => p.alive);
    for (const p of running) p.kill('SIGTERM');
    const forceKilled: string[] = [];
    const all = Promise.all(running.map((p) => p.exited));
    if (!(await within(all, timeoutMs))) {
      for (const p of running) {
        if (p.kill('SIGKILL')) forceKilled.push(p.label);
      }
      await within(all, 5_000);
    }
    const instances = this.procs.map((p): StoppedInstance => {
      const exit: ExitInfo | undefined = p.exit;
      return {
        label: p.label,
        service: p.service,
        id: p.info?.id,
        pid: p.pid,
        exit: describeExit(exit),
        code: exit?.code ?? null,
        signal: exit?.signal ?? null,
        signalsSent: [...p.signalsSent],
      };
    });
    const leftoverPids = this.procs.map((p) => p.pid).filter((pid): pid is number => pid !== undefined && isAlive(pid));
    return { instances, forceKilled, leftoverPids, durationMs: Date.now() - startedAt };
  }
}

/** Shared by the live view and the demo, so the demo exercises the very mesh `pnpm mesh` starts. */
export function meshFromArgs(args: CliArgs, reg: RegistryEnv, log: (message: string) => void): Mesh {
  const mesh = new Mesh({
    instances: args.instances,
    gatewayPort: args.gatewayPort,
    portRange: args.portRange,
    drainMs: args.drainMs,
    userRatePerSec: args.userRatePerSec,
    ewmaDecayMs: args.ewmaDecayMs,
    workers: args.workers,
    env: reg.env,
    onEvent: log,
    // Once everything is stopping, the instances' own farewells (e.g. their clients noticing the
    // others leave) are noise; they stay in each process's log tail.
    onLine: (proc, line) => {
      if (!mesh.stopped) log(`${proc.label}: ${line}`);
    },
  });
  return mesh;
}

async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
