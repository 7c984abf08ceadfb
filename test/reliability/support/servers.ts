import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';

async function listen(server: { listen(port: number, host: string, cb: () => void): unknown; once(e: 'error', cb: (err: Error) => void): unknown; address(): AddressInfo | string | null }): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/**
 * A TCP listener that must never be reached: it counts connections and bytes and answers nothing.
 * Registry entries that are invalid in some other way point at it, so "never dialled" is a count.
 */
export interface Trap {
  readonly port: number;
  readonly connections: number;
  readonly bytes: number;
  close(): Promise<void>;
}

export async function startTrap(): Promise<Trap> {
  let connections = 0;
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('data', (chunk) => (bytes += chunk.length));
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  return {
    port,
    get connections() {
      return connections;
    },
    get bytes() {
      return bytes;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A plain HTTP peer on 127.0.0.1 that counts requests. */
export interface Peer {
  readonly port: number;
  readonly requests: number;
  readonly server: Server;
  close(): Promise<void>;
}

export async function startPeer(
  handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok'),
): Promise<Peer> {
  let requests = 0;
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    requests++;
    handler(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    server,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export type JunkAnswer = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * An HTTP proxy in front of a Consul agent (its double). While `junk` is set, health queries are
 * answered by the junk answers in turn instead of the agent; everything else is always forwarded.
 */
export interface GarblingProxy {
  readonly url: string;
  junk: JunkAnswer[] | undefined;
  readonly junkServed: number;
  /** Every request seen: method, path and its X-Consul-Token header (undefined when absent). */
  readonly seen: ReadonlyArray<{ method: string; path: string; token: string | undefined }>;
  close(): Promise<void>;
}

export async function startGarblingProxy(upstreamPort: number): Promise<GarblingProxy> {
  let served = 0;
  let turn = 0;
  const sockets = new Set<Socket>();
  const state: { junk: JunkAnswer[] | undefined } = { junk: undefined };
  const seen: Array<{ method: string; path: string; token: string | undefined }> = [];
  const server = createHttpServer((req, res) => {
    const token = req.headers['x-consul-token'];
    seen.push({ method: req.method ?? '', path: req.url ?? '', token: Array.isArray(token) ? token.join(',') : token });
    const junk = state.junk;
    if (junk && junk.length > 0 && (req.url ?? '').startsWith('/v1/health/service/')) {
      served++;
      junk[turn++ % junk.length]!(req, res);
      return;
    }
    const upstream = httpRequest(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    get junk() {
      return state.junk;
    },
    set junk(value) {
      state.junk = value;
    },
    get junkServed() {
      return served;
    },
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A raw TCP server answering every HTTP request with `answer(head)` bytes, then closing. */
export interface RawServer {
  readonly port: number;
  readonly url: string;
  answer: (head: string) => Buffer | string;
  close(): Promise<void>;
}

export async function startRawServer(answer: (head: string) => Buffer | string): Promise<RawServer> {
  const sockets = new Set<Socket>();
  const state = { answer };
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (chunk) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      let bytes: Buffer | string;
      try {
        bytes = state.answer(head);
      } catch {
        bytes = '';
      }
      socket.end(bytes);
    });
  });
  const port = await listen(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get answer() {
      return state.answer;
    },
    set answer(fn) {
      state.answer = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
