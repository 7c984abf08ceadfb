import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * A scripted stand-in for a Consul agent, for the ConsulRegistry unit tests: each test decides the
 * answers, and inspects the requests the registry made. (The faithful agent double lives in
 * test/support/consul-double.ts; this one exists to produce the odd answers a double would not.)
 */

export interface StubRequest {
  method: string;
  /** Decoded path, without the query. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  /** performance.now() when the request arrived. */
  at: number;
  /** Set when the client dropped the connection before an answer was sent. */
  abortedAt?: number;
}

export type StubReply =
  | { status?: number; headers?: Record<string, string>; json?: unknown; text?: string }
  /** Never answer (a blocking query that waits forever). */
  | 'hang'
  /** Drop the connection without an answer (what a stale keep-alive socket gives). */
  | 'reset';

export type StubHandler = (req: StubRequest) => StubReply | Promise<StubReply>;

export interface ConsulStub {
  url: string;
  port: number;
  requests: StubRequest[];
  /** Requests whose path starts with `prefix`. */
  matching(prefix: string): StubRequest[];
  setHandler(handler: StubHandler): void;
  /** Closes keep-alive connections that carry no request, as a restarting agent would. */
  closeIdleConnections(): void;
  close(): Promise<void>;
}

export async function startConsulStub(
  handler: StubHandler = () => ({}),
  options: { host?: string; tls?: { key: string; cert: string } } = {},
): Promise<ConsulStub> {
  let current = handler;
  const requests: StubRequest[] = [];
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stub');
      const record: StubRequest = {
        method: req.method ?? '',
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      requests.push(record);
      res.on('close', () => {
        if (!res.writableFinished) record.abortedAt = performance.now();
      });
      void Promise.resolve(current(record)).then((reply) => {
        if (reply === 'hang' || res.destroyed) return;
        if (reply === 'reset') {
          req.socket.destroy();
          return;
        }
        const headers = { ...reply.headers };
        let body = '';
        if (reply.json !== undefined) {
          headers['content-type'] ??= 'application/json';
          body = JSON.stringify(reply.json);
        } else if (reply.text !== undefined) {
          headers['content-type'] ??= 'text/plain; charset=utf-8';
          body = reply.text;
        }
        res.writeHead(reply.status ?? 200, headers);
        res.end(body);
      });
    });
  };
  const server: Server = options.tls ? createHttpsServer(options.tls, onRequest) : createHttpServer(onRequest);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `${options.tls ? 'https' : 'http'}://${urlHost}:${port}`,
    port,
    requests,
    matching: (prefix) => requests.filter((r) => r.path.startsWith(prefix)),
    setHandler(next) {
      current = next;
    },
    closeIdleConnections: () => server.closeIdleConnections(),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A `/v1/health/service` entry as Consul sends it. */
export function healthEntry(
  service: string,
  id: string,
  port: number,
  extra: { address?: string; nodeAddress?: string; tags?: string[]; meta?: Record<string, string> } = {},
): unknown {
  return {
    Node: { ID: 'node-id', Node: 'node-1', Address: extra.nodeAddress ?? '10.0.0.9', Datacenter: 'dc1' },
    Service: {
      ID: id,
      Service: service,
      Tags: extra.tags ?? [],
      Address: extra.address ?? '127.0.0.1',
      Meta: extra.meta ?? {},
      Port: port,
    },
    Checks: [{ CheckID: 'serfHealth', Status: 'passing' }],
  };
}

/** Polls `condition` every 10 ms until it holds; fails with `what` after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The error `promise` rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}
