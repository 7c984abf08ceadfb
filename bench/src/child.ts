import { fork, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:http';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/**
 * Child processes of the bench: upstreams, load runners, memory probes, each a compiled entry of
 * this directory (plain node, no loader: quick to start, nothing extra in the measured process),
 * talking to the parent over IPC.
 */

export interface SpawnOptions {
  /** Extra node flags, e.g. `--expose-gc`. */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  /** Pass the child's stderr through (default true: a crashing child explains itself). */
  stderr?: boolean;
}

/** Starts the entry `<name>.js` next to this module with `config` as its JSON argument. */
export function spawnEntry(name: string, config: unknown, options: SpawnOptions = {}): ChildProcess {
  const file = fileURLToPath(new URL(`./${name}.js`, import.meta.url));
  return fork(file, [JSON.stringify(config)], {
    execArgv: options.execArgv ?? [],
    env: options.env ?? process.env,
    stdio: ['ignore', 'ignore', options.stderr === false ? 'ignore' : 'inherit', 'ipc'],
  });
}

export interface Message {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** The next IPC message of `type` from `child`; rejects if it exits first or after `timeoutMs`. */
export function nextMessage<T extends Message = Message>(
  child: ChildProcess,
  type: string,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`child ${child.pid}: no "${type}" message within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (message: Message) => {
      if (message?.type === 'error') {
        cleanup();
        reject(new Error(`child ${child.pid} failed: ${String(message.message)}`));
      } else if (message?.type === type) {
        cleanup();
        resolve(message as T);
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`child ${child.pid} exited (${code ?? signal}) before sending "${type}"`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

export function send(child: ChildProcess, message: Message): void {
  if (child.connected) child.send(message);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** In a child: the JSON argument the parent passed. */
export function childConfig<T>(): T {
  return JSON.parse(process.argv[2] ?? '{}') as T;
}

/** In a child: sends to the parent if still connected. */
export function toParent(message: Message): void {
  if (process.connected) process.send!(message);
}

/** In a child: sends to the parent and resolves once the message is out (safe to exit then). */
export function toParentFlushed(message: Message): Promise<void> {
  if (!process.connected) return Promise.resolve();
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

/** In a child: reports a fatal error to the parent, then exits. */
export function failChild(err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.exitCode = 1;
  if (!process.connected) {
    console.error(message);
    process.exit(1);
  }
  // Exit only once the message is out: an IPC send is asynchronous.
  process.send!({ type: 'error', message }, () => process.exit(1));
}

/**
 * In a child: serves `server` on 127.0.0.1 (port 0) with keep-alive longer than any client's idle
 * timeout, exits on SIGTERM, hands IPC messages to `onMessage`, and tells the parent
 * `{ type: 'ready', port, pid }` once listening.
 */
export function serveChild(server: Server, onMessage: (message: { type?: string }) => void): void {
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 61_000;
  server.listen(0, '127.0.0.1');
  server.once('error', failChild);
  server.once('listening', () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    process.on('SIGTERM', () => process.exit(0));
    process.on('message', onMessage);
    toParent({ type: 'ready', port, pid: process.pid });
  });
}
