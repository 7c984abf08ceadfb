import type { Mesh, StopReport } from './mesh.js';
import { listRegistry } from './observe.js';
import type { RegistryEnv } from './registry-env.js';

export interface ShutdownResult {
  /** 0 when every instance left cleanly, no process is left and the registry lists nobody. */
  code: number;
  report: StopReport;
  /** Instances the registry still listed as healthy after everything stopped: must be empty. */
  registryLeft: string[];
  problems: string[];
}

export interface Shutdown {
  /** Resolves when a stop was asked for (a signal, or `request`). Never rejects. */
  readonly requested: Promise<void>;
  readonly isRequested: boolean;
  /** Resolves once everything stopped and was checked (after a request). */
  readonly done: Promise<ShutdownResult>;
  /** Starts the stop (idempotent); `code` is the least exit code the run will have. */
  request(reason: string, code?: number): Promise<ShutdownResult>;
}

export interface ShutdownOptions {
  registry: RegistryEnv;
  drainMs: number;
  log(message: string): void;
  /** Runs first, e.g. to take the live view off the terminal. */
  beforeStop?: () => void;
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
// A package runner (pnpm, npm) forwards the terminal's SIGINT to us, which the terminal also sent
// us directly: one Ctrl-C arrives twice. Only a signal this long after the first means "again".
const SECOND_SIGNAL_AFTER_MS = 1_000;
// After an instance is gone, how long the registry may take to stop listing it (a SIGKILLed one
// leaves when its TTL lapses).
const REGISTRY_SETTLE_MS = 8_000;

/**
 * The supervisor's way out, whatever the reason: Ctrl-C, SIGTERM, a failed start, the end of the
 * demo. Every instance is SIGTERMed once (it deregisters, drains and exits), waited for, and
 * SIGKILLed only if it overstays; then no pid may be left and the registry must list nobody.
 * A second Ctrl-C kills everything at once. If the supervisor exits any other way, the `exit`
 * hook SIGKILLs what still runs.
 */
export function installShutdown(mesh: Mesh, options: ShutdownOptions): Shutdown {
  let resolveRequested!: () => void;
  const requested = new Promise<void>((resolve) => {
    resolveRequested = resolve;
  });
  let resolveDone!: (r: ShutdownResult) => void;
  const done = new Promise<ShutdownResult>((resolve) => {
    resolveDone = resolve;
  });
  let started = false;
  let firstSignalAt: number | undefined;

  const onSignal = (signal: NodeJS.Signals): void => {
    const now = Date.now();
    if (firstSignalAt !== undefined && now - firstSignalAt >= SECOND_SIGNAL_AFTER_MS) {
      options.log(`${signal} again: killing every instance now`);
      mesh.killAllNow();
      options.registry.cleanupNow();
      process.exit(130);
    }
    if (firstSignalAt !== undefined || started) return;
    firstSignalAt = now;
    void request(`${signal} received (press Ctrl-C again to kill everything at once)`, 0);
  };
  const onExit = (): void => mesh.killAllNow();
  for (const s of SIGNALS) process.on(s, onSignal);
  process.on('exit', onExit);

  async function run(reason: string, minCode: number): Promise<ShutdownResult> {
    options.beforeStop?.();
    const alive = mesh.procs.filter((p) => p.alive).length;
    options.log(
      `${reason}: stopping ${alive} instance(s) with SIGTERM (each deregisters, drains ${options.drainMs} ms, exits)`,
    );
    const report = await mesh.stop(options.drainMs + 15_000);
    const problems: string[] = [];
    for (const i of report.instances) {
      const asked = i.signalsSent.at(-1);
      // An instance we SIGKILLed on purpose (the demo) may end by SIGKILL; any other end must be 0.
      if (asked === 'SIGKILL' && !report.forceKilled.includes(i.label)) continue;
      if (i.code !== 0) problems.push(`${i.label} ended with ${i.exit}`);
    }
    for (const label of report.forceKilled) problems.push(`${label} had to be SIGKILLed`);
    for (const pid of report.leftoverPids) problems.push(`process ${pid} is still running`);
    const ours = new Set(mesh.procs.map((p) => p.info?.id).filter((id): id is string => id !== undefined));
    const registryLeft = await settledRegistry(options.registry, ours);
    for (const id of registryLeft) problems.push(`the registry still lists ${id}`);
    for (const p of problems) options.log(`problem: ${p}`);
    if (problems.length === 0) {
      options.log(
        `stopped in ${report.durationMs} ms: all ${report.instances.length} instance processes have exited, none is left running, the registry lists none of them`,
      );
    }
    for (const s of SIGNALS) process.off(s, onSignal);
    process.off('exit', onExit);
    await options.registry.cleanup().catch(() => {});
    return { code: Math.max(minCode, problems.length > 0 ? 1 : 0), report, registryLeft, problems };
  }

  function request(reason: string, code = 0): Promise<ShutdownResult> {
    if (!started) {
      started = true;
      resolveRequested();
      void run(reason, code).then(resolveDone, (err: unknown) => {
        options.log(`stopping failed: ${(err as Error).message}`);
        mesh.killAllNow();
        resolveDone({
          code: 1,
          report: { instances: [], forceKilled: [], leftoverPids: [], durationMs: 0 },
          registryLeft: [],
          problems: [String(err)],
        });
      });
    }
    return done;
  }

  return {
    requested,
    get isRequested() {
      return started;
    },
    done,
    request,
  };
}

/**
 * Our instances the registry still lists as healthy, after waiting (bounded) for it to settle.
 * Only ours: a shared Consul may well list other people's services of the same names.
 */
async function settledRegistry(reg: RegistryEnv, ours: ReadonlySet<string>): Promise<string[]> {
  const deadline = Date.now() + REGISTRY_SETTLE_MS;
  for (;;) {
    let left: string[];
    try {
      const map = await listRegistry(reg.registry, 2_000);
      left = [...map.values()].flatMap((ids) => [...ids]).filter((id) => ours.has(id));
    } catch (err) {
      left = [`(registry unreadable: ${(err as Error).message})`];
    }
    if (left.length === 0 || Date.now() >= deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Waits for the shutdown and turns it into the process's exit code. */
export async function finishShutdown(done: Promise<ShutdownResult>): Promise<number> {
  return (await done).code;
}
