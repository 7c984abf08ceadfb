import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { MemoryRegistry, silentLogger, type RegistryLogger, type ServiceInstance } from '@peerlb/registry';

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A real HTTP peer on 127.0.0.1 that counts what reaches it. */
export interface TestPeer {
  readonly id: string;
  readonly port: number;
  /** Requests whose headers arrived (counted before the handler runs). */
  readonly requests: number;
  /** Requests per path. */
  readonly byPath: Map<string, number>;
  /** Sockets ever accepted, and open right now. */
  readonly connectionsAccepted: number;
  readonly openConnections: number;
  /** Last `x-peerlb-caller` header seen. */
  readonly lastCaller: string | undefined;
  setHandler(handler: Handler): void;
  /** Stops listening and tears down every socket: the peer is dead (connect refused from now on). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

export const ok: Handler = (_req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end('ok');
};

export async function startPeer(id: string, handler: Handler = ok): Promise<TestPeer> {
  let current = handler;
  let requests = 0;
  let accepted = 0;
  let lastCaller: string | undefined;
  const byPath = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    requests++;
    const path = (req.url ?? '').split('?')[0]!;
    byPath.set(path, (byPath.get(path) ?? 0) + 1);
    const caller = req.headers['x-peerlb-caller'];
    if (typeof caller === 'string') lastCaller = caller;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-peer', id);
      current(req, res, Buffer.concat(chunks));
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket: Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }));
  return {
    id,
    port,
    get requests() {
      return requests;
    },
    byPath,
    get connectionsAccepted() {
      return accepted;
    },
    get openConnections() {
      return sockets.size;
    },
    get lastCaller() {
      return lastCaller;
    },
    setHandler(h) {
      current = h;
    },
    kill: stop,
    close: stop,
  };
}

export function instanceOf(peer: TestPeer, service: string): ServiceInstance {
  return { id: peer.id, service, address: '127.0.0.1', port: peer.port, tags: [], meta: {} };
}

/** A MemoryRegistry whose instances are healthy as soon as they are added. */
export class TestRegistry extends MemoryRegistry {
  constructor(logger: RegistryLogger = silentLogger) {
    super({ logger });
  }

  async add(service: string, peer: TestPeer | { id: string; port: number; address?: string }): Promise<void> {
    await this.register(
      { id: peer.id, service, address: 'address' in peer && peer.address ? peer.address : '127.0.0.1', port: peer.port },
      { ttlMs: 600_000 },
    );
    await this.heartbeat(peer.id);
  }

  async remove(id: string): Promise<void> {
    await this.deregister(id);
  }
}

/** Polls `check` until it returns truthy (or throws after `timeoutMs`). */
export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 3000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await delay(10);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { field?: string }).field;
  }
  return undefined;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
