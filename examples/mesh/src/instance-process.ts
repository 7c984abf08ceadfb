import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { InstanceConfig, InstanceMessage, ServiceName } from './protocol.js';

export interface ReadyInfo {
  id: string;
  port: number;
  url: string;
  pid: number;
  registeredAt: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

export interface InstanceProcessOptions {
  script: string;
  config: InstanceConfig;
  env: NodeJS.ProcessEnv;
  readyTimeoutMs: number;
  /** Every output line of the child, as it comes. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

const LOG_TAIL_LINES = 40;

/** One instance process, owned by the supervisor from fork to exit. */
export class InstanceProcess {
  readonly service: ServiceName;
  readonly label: string;
  readonly child: ChildProcess;
  readonly ready: Promise<ReadyInfo>;
  readonly exited: Promise<ExitInfo>;
  readonly logTail: string[] = [];
  info: ReadyInfo | undefined;
  exit: ExitInfo | undefined;
  /** Signals we sent, in order: to tell an expected exit from a crash. */
  readonly signalsSent: NodeJS.Signals[] = [];

  constructor(options: InstanceProcessOptions) {
    this.service = options.config.service;
    this.label = options.config.label;
    // detached: the instance gets its own process group, so a Ctrl-C in the terminal reaches the
    // supervisor only, and each instance is stopped once, by us, with SIGTERM. If the supervisor
    // dies, the instance sees its IPC channel close and leaves on its own (see instance.ts).
    this.child = fork(options.script, [JSON.stringify(options.config)], {
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      detached: true,
      execArgv: [],
      serialization: 'json',
    });
    this.pipe(this.child.stdout, 'stdout', options.onLine);
    this.pipe(this.child.stderr, 'stderr', options.onLine);

    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        resolve(this.exit);
      });
    });
    this.ready = new Promise<ReadyInfo>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.label} not ready after ${options.readyTimeoutMs} ms${this.describeLog()}`));
        this.kill('SIGKILL');
      }, options.readyTimeoutMs);
      timer.unref();
      this.child.on('message', (raw: InstanceMessage) => {
        if (raw?.type === 'ready') {
          clearTimeout(timer);
          this.info = { id: raw.id, port: raw.port, url: raw.url, pid: raw.pid, registeredAt: raw.registeredAt };
          resolve(this.info);
        } else if (raw?.type === 'failed') {
          clearTimeout(timer);
          reject(new Error(`${this.label} failed to start: ${raw.message}`));
        }
      });
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(new Error(`${this.label} exited (${describeExit(exit)}) before it was ready${this.describeLog()}`));
      });
    });
    // A startup failure is reported by whoever awaits `ready`; never an unhandled rejection.
    this.ready.catch(() => {});
    // Never let a broken IPC channel (the child exiting mid-send) become an uncaught error here.
    this.child.on('error', () => {});
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Sends `signal` if the process still runs; returns whether it was sent. */
  kill(signal: NodeJS.Signals): boolean {
    if (!this.alive) return false;
    this.signalsSent.push(signal);
    try {
      return this.child.kill(signal);
    } catch {
      return false;
    }
  }

  private pipe(stream: Readable | null, name: 'stdout' | 'stderr', onLine?: InstanceProcessOptions['onLine']): void {
    if (stream === null) return;
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
      this.logTail.push(line);
      if (this.logTail.length > LOG_TAIL_LINES) this.logTail.shift();
      onLine?.(line, name);
    });
  }

  private describeLog(): string {
    return this.logTail.length === 0 ? '' : `; its last output:\n  ${this.logTail.slice(-10).join('\n  ')}`;
  }
}

export function describeExit(exit: ExitInfo | undefined): string {
  if (exit === undefined) return 'running';
  return exit.signal !== null ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}
