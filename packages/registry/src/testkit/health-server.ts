import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A stand-in service instance: answers its health path with a status the test controls. */
export interface HealthServer {
  readonly port: number;
  readonly address: string;
  /** HTTP status the health endpoint answers from now on. */
  setStatus(code: number): void;
  /** Health requests served so far. */
  readonly hits: number;
  close(): Promise<void>;
}

export async function startHealthServer(path = '/health'): Promise<HealthServer> {
  let status = 200;
  let hits = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === path) hits++;
    res.statusCode = req.url === path ? status : 404;
    res.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: '127.0.0.1',
    setStatus(code) {
      status = code;
    },
    get hits() {
      return hits;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
