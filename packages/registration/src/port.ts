import type { Server } from 'node:net';
import { getPort } from 'portfinder';
import { AbortedError, throwIfAborted } from '@peerlb/registry';
import { PortUnavailableError } from './errors.js';

/** How `startService` picks its port. */
export type PortChoice =
  | { kind: 'fixed'; port: number }
  | { kind: 'range'; start: number; end: number }
  | { kind: 'ephemeral' };

export interface ListenOptions {
  /** Interface to bind; undefined = every interface. */
  host?: string;
  signal?: AbortSignal;
  /** Bound on find-then-listen rounds for a range (default: range size, within 10..100). */
  maxAttempts?: number;
  random?: () => number;
}

/**
 * Listens `server` on a port picked by `choice` and returns the port actually bound.
 *
 * For a range, portfinder only says a port was free a moment ago (it probes by listen-then-close),
 * so another process can win the port before our `listen`: `EADDRINUSE` at listen time is expected
 * and answered by searching again. Each search starts at a random port of the range so that
 * parallel starters do not all race for the lowest free port.
 */
export async function listenOnPort(server: Server, choice: PortChoice, options: ListenOptions = {}): Promise<number> {
  const { host, signal } = options;
  throwIfAborted(signal);
  if (choice.kind === 'ephemeral') {
    await listenOnce(server, 0, host, signal);
    return boundPort(server);
  }
  if (choice.kind === 'fixed') {
    try {
      await listenOnce(server, choice.port, host, signal);
    } catch (err) {
      if (isAddressBusy(err)) {
        throw new PortUnavailableError(`port ${choice.port} is not available (${(err as { code?: string }).code})`, { port: choice.port }, { cause: err });
      }
      throw err;
    }
    return boundPort(server);
  }
  const range = { start: choice.start, end: choice.end };
  const size = choice.end - choice.start + 1;
  const maxAttempts = options.maxAttempts ?? Math.min(100, Math.max(10, size));
  const random = options.random ?? Math.random;
  let lastError: unknown;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    throwIfAborted(signal);
    const candidate = await findFreePort(choice.start, choice.end, host, random);
    if (candidate === undefined) {
      throw new PortUnavailableError(`no free port in ${choice.start}..${choice.end}`, { range }, { cause: lastError });
    }
    try {
      await listenOnce(server, candidate, host, signal);
      return boundPort(server);
    } catch (err) {
      if (!isAddressBusy(err)) throw err;
      lastError = err;
    }
  }
  throw new PortUnavailableError(
    `could not listen on a port in ${choice.start}..${choice.end} after ${maxAttempts} attempts (ports taken between search and listen)`,
    { range },
    { cause: lastError },
  );
}

async function findFreePort(start: number, end: number, host: string | undefined, random: () => number): Promise<number | undefined> {
  const offset = start + Math.floor(random() * (end - start + 1));
  const first = await tryFind(offset, end, host);
  if (first !== undefined) return first;
  return offset > start ? tryFind(start, offset - 1, host) : undefined;
}

async function tryFind(start: number, end: number, host: string | undefined): Promise<number | undefined> {
  try {
    const port = await getPort(host === undefined ? { port: start, stopPort: end } : { port: start, stopPort: end, host });
    return port >= start && port <= end ? port : undefined;
  } catch {
    // portfinder reports "no open ports" as a plain Error; a range with nothing free is our answer.
    return undefined;
  }
}

function listenOnce(server: Server, port: number, host: string | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      server.off('listening', onListening);
      server.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const onListening = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAbort = () => {
      cleanup();
      server.close();
      reject(new AbortedError(signal?.reason));
    };
    server.once('listening', onListening);
    server.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    // exclusive: in a node:cluster worker, listen itself rather than share the primary's socket,
    // so each worker is its own instance on its own port (no effect outside a cluster).
    server.listen(host === undefined ? { port, exclusive: true } : { port, host, exclusive: true });
  });
}

function boundPort(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('server is not listening on a TCP port');
  return address.port;
}

function isAddressBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EADDRINUSE' || code === 'EACCES';
}
