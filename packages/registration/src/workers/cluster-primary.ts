import cluster, { type Worker } from 'node:cluster';
import { AbortedError, type RegistryLogger } from '@peerlb/registry';
import { processHooks, type HookParticipant } from '../process-hooks.js';
import { TypedEmitter } from '../typed-emitter.js';
import { WORKER_INDEX_ENV, type ResolvedRestart } from './worker-options.js';

/** One worker slot as the primary sees it. */
export interface WorkerInfo {
  readonly index: number;
  /** The current process of the slot (undefined while waiting to restart). */
  readonly pid: number | undefined;
  /** The instance the worker registered, once ready. */
  readonly id: string | undefined;
  readonly port: number | undefined;
  readonly url: string | undefined;
  /** Times this slot was restarted. */
  readonly restarts: number;
  readonly state: 'starting' | 'ready' | 'restarting' | 'gave-up' | 'stopped';
}

export interface ClusterEvents {
  'worker-ready': [WorkerInfo];
  /** A worker died without being asked to (code or signal as node:cluster reports them). */
  'worker-exit': [WorkerInfo, { code: number | null; signal: string | null }];
  'worker-restart': [WorkerInfo, { delayMs: number }];
  /** The slot crashed more than `maxRestarts` times within `windowMs`: it is not restarted again. */
  'worker-gave-up': [WorkerInfo];
  error: [Error];
  closed: [];
}

/** What `startService({ workers })` resolves with in the primary process. */
export interface ServiceCluster {
  readonly primary: true;
  readonly service: string;
  workers(): WorkerInfo[];
  on<K extends keyof ClusterEvents>(event: K, listener: (...args: ClusterEvents[K]) => void): this;
  off<K extends keyof ClusterEvents>(event: K, listener: (...args: ClusterEvents[K]) => void): this;
  /** Drains every worker the drain-first way (SIGTERM: deregister, keep serving drainMs, close) and waits for them. */
  close(): Promise<void>;
}

/** Messages between a worker and its primary, on the cluster IPC channel. */
export type WorkerMessage =
  | { peerlb: 'worker-ready'; id: string; port: number; url: string }
  | { peerlb: 'worker-failed'; message: string; code: string | undefined };

interface Slot {
  index: number;
  worker: Worker | undefined;
  id: string | undefined;
  port: number | undefined;
  url: string | undefined;
  restarts: number;
  crashes: number[];
  state: WorkerInfo['state'];
  timer: NodeJS.Timeout | undefined;
}

export interface PrimaryConfig {
  service: string;
  count: number;
  restart: ResolvedRestart;
  handleSignals: boolean;
  /** How long the primary waits for every worker to register. */
  startupTimeoutMs: number;
  /** How long close() waits for a draining worker before killing it. */
  stopTimeoutMs: number;
  logger: RegistryLogger;
  signal: AbortSignal | undefined;
}

/**
 * The primary of a service run as node:cluster workers, each its own instance on its own port:
 * forks the workers, restarts one that dies (exponential backoff, bounded crash loop, reported
 * through events and the logger), and on close or SIGINT/SIGTERM drains them all.
 */
export async function startPrimary(config: PrimaryConfig): Promise<ServiceCluster> {
  const primary = new ClusterPrimary(config);
  try {
    await primary.start();
  } catch (err) {
    await primary.close();
    throw err;
  }
  return primary;
}

class ClusterPrimary implements ServiceCluster {
  readonly primary = true;
  readonly #events: TypedEmitter<ClusterEvents>;
  readonly #slots: Slot[];
  #closing: Promise<void> | undefined;
  #removeSignalHook: () => void = () => {};

  constructor(private readonly config: PrimaryConfig) {
    this.#events = new TypedEmitter<ClusterEvents>(config.logger);
    this.#slots = Array.from({ length: config.count }, (_, index) => ({
      index,
      worker: undefined,
      id: undefined,
      port: undefined,
      url: undefined,
      restarts: 0,
      crashes: [],
      state: 'starting' as const,
      timer: undefined,
    }));
  }

  get service(): string {
    return this.config.service;
  }

  workers(): WorkerInfo[] {
    return this.#slots.map(info);
  }

  on<K extends keyof ClusterEvents>(event: K, listener: (...args: ClusterEvents[K]) => void): this {
    this.#events.on(event, listener);
    return this;
  }

  off<K extends keyof ClusterEvents>(event: K, listener: (...args: ClusterEvents[K]) => void): this {
    this.#events.off(event, listener);
    return this;
  }

  async start(): Promise<void> {
    if (this.config.handleSignals) {
      const participant: HookParticipant = { shutdown: () => this.close(), crash: async () => this.#killAll() };
      this.#removeSignalHook = processHooks().onSignals(participant);
    }
    const ready = this.#slots.map((slot) => this.#fork(slot));
    const { signal, startupTimeoutMs } = this.config;
    let timer: NodeJS.Timeout | undefined;
    const limits = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`workers of "${this.config.service}" not all registered within ${startupTimeoutMs} ms`)),
        startupTimeoutMs,
      );
      timer.unref();
      signal?.addEventListener('abort', () => reject(new AbortedError(signal.reason)), { once: true });
    });
    try {
      await Promise.race([Promise.all(ready), limits]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Forks the slot's worker; resolves when it registered, rejects if it failed to start. */
  #fork(slot: Slot): Promise<void> {
    slot.state = slot.restarts > 0 ? 'restarting' : 'starting';
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(slot.index) });
    slot.worker = worker;
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (message: WorkerMessage) => {
        if (message?.peerlb === 'worker-ready') {
          slot.id = message.id;
          slot.port = message.port;
          slot.url = message.url;
          slot.state = 'ready';
          this.#events.emit('worker-ready', info(slot));
          resolve();
        } else if (message?.peerlb === 'worker-failed') {
          reject(Object.assign(new Error(`worker ${slot.index} failed to start: ${message.message}`), { code: message.code }));
        }
      });
      worker.on('exit', (code, signal) => {
        reject(new Error(`worker ${slot.index} exited during startup (code ${code}, signal ${signal})`));
        this.#exited(slot, worker, code, signal);
      });
    });
  }

  #exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    if (this.#closing) {
      slot.state = 'stopped';
      return;
    }
    this.#events.emit('worker-exit', info(slot), { code, signal });
    const now = Date.now();
    const { restart } = this.config;
    slot.crashes = slot.crashes.filter((at) => now - at < restart.windowMs);
    slot.crashes.push(now);
    if (slot.crashes.length > restart.maxRestarts) {
      slot.state = 'gave-up';
      this.config.logger.warn(
        `[peerlb] worker ${slot.index} of "${this.config.service}" died ${slot.crashes.length} times within ${restart.windowMs} ms: not restarted again`,
      );
      this.#events.emit('worker-gave-up', info(slot));
      return;
    }
    const delayMs = Math.min(restart.maxDelayMs, restart.minDelayMs * 2 ** (slot.crashes.length - 1));
    slot.state = 'restarting';
    slot.restarts++;
    this.config.logger.warn(
      `[peerlb] worker ${slot.index} of "${this.config.service}" exited (code ${code}, signal ${signal}); restarting in ${delayMs} ms`,
    );
    this.#events.emit('worker-restart', info(slot), { delayMs });
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (this.#closing) return;
      this.#fork(slot).catch((err: unknown) => this.#events.emit('error', err instanceof Error ? err : new Error(String(err))));
    }, delayMs);
  }

  close(): Promise<void> {
    this.#closing ??= this.#stopAll();
    return this.#closing;
  }

  async #stopAll(): Promise<void> {
    for (const slot of this.#slots) {
      clearTimeout(slot.timer);
      slot.timer = undefined;
    }
    const running = this.#slots.flatMap((slot) => (slot.worker ? [slot.worker] : []));
    await Promise.all(running.map((worker) => this.#stop(worker)));
    for (const slot of this.#slots) if (slot.state !== 'gave-up') slot.state = 'stopped';
    this.#removeSignalHook();
    this.#events.emit('closed');
  }

  /** SIGTERM: the worker's own signal handling drains it (deregister first); killed if it overstays. */
  #stop(worker: Worker): Promise<void> {
    if (worker.isDead()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const force = setTimeout(() => worker.process.kill('SIGKILL'), this.config.stopTimeoutMs);
      force.unref();
      worker.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      worker.process.kill('SIGTERM');
    });
  }

  #killAll(): void {
    for (const slot of this.#slots) slot.worker?.process.kill('SIGKILL');
  }
}

function info(slot: Slot): WorkerInfo {
  return {
    index: slot.index,
    pid: slot.worker?.process.pid,
    id: slot.id,
    port: slot.port,
    url: slot.url,
    restarts: slot.restarts,
    state: slot.state,
  };
}
