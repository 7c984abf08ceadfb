/**
 * An upstream in its own process: a node:http server that answers every request with its own id
 * after a fixed latency. Two modes:
 *
 * - `plain`: just the server on 127.0.0.1 (port 0 unless given). The bench registers it.
 * - `service`: the instance registers itself with `startService` of @peerlb/registration (the
 *   registry from the environment: PEERLB_REGISTRY_DIR or CONSUL_HTTP_ADDR), as a real service
 *   would. It timestamps the registration and the requests it receives, so discovery delays are
 *   measured on one clock, in this process. Commands over IPC: `deregister`, `report`.
 *
 * Tells the parent `{ type: 'ready', port }` once serving (and, in service mode, registered).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { startService } from '@peerlb/registration';
import { childConfig, failChild, toParent } from './child.js';

export interface UpstreamConfig {
  readonly id: string;
  readonly latencyMs: number;
  readonly mode: 'plain' | 'service';
  readonly port?: number;
  /** Service mode: the service name to register under. */
  readonly service?: string;
}

const config = childConfig<UpstreamConfig>();
const body = Buffer.from(config.id);
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
const epochMs = () => performance.timeOrigin + performance.now();

let requests = 0;
let firstRequestAt: number | undefined;
let lastRequestAt: number | undefined;

function answer(res: ServerResponse): void {
  res.writeHead(200, headers);
  res.end(body);
}

function handler(_req: IncomingMessage, res: ServerResponse): void {
  if (config.mode === 'service') {
    const now = epochMs();
    firstRequestAt ??= now;
    lastRequestAt = now;
  }
  requests++;
  if (config.latencyMs > 0) setTimeout(answer, config.latencyMs, res);
  else answer(res);
}

async function plain(): Promise<void> {
  const server = createServer(handler);
  // Longer than any client's idle timeout, so the server never closes a socket a client is reusing.
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 61_000;
  server.listen(config.port ?? 0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.on('SIGTERM', () => process.exit(0));
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'report') toParent({ type: 'report', requests });
  });
  toParent({ type: 'ready', port, pid: process.pid });
}

async function service(): Promise<void> {
  let registeringAt: number | undefined;
  let registeredAt: number | undefined;
  const handle = await startService({
    service: config.service!,
    id: config.id,
    handler,
    drainMs: 0,
    handleSignals: false,
    handleCrashes: false,
    on: {
      state: (state) => {
        if (state === 'registering') registeringAt ??= epochMs();
        if (state === 'registered') registeredAt ??= epochMs();
      },
    },
  });
  handle.server.keepAliveTimeout = 60_000;
  let deregisterAt: number | undefined;
  let deregisteredAt: number | undefined;
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'deregister') {
      deregisterAt = epochMs();
      handle.deregister().then(
        () => {
          deregisteredAt = epochMs();
          toParent({ type: 'deregistered' });
        },
        (err: unknown) => failChild(err),
      );
    } else if (message?.type === 'report') {
      toParent({
        type: 'report',
        requests,
        registeringAt,
        registeredAt,
        firstRequestAt,
        deregisterAt,
        deregisteredAt,
        lastRequestAt,
        now: epochMs(),
      });
    }
  });
  process.on('SIGTERM', () => {
    handle.close().finally(() => process.exit(0));
  });
  toParent({ type: 'ready', port: handle.port, pid: process.pid });
}

(config.mode === 'service' ? service() : plain()).catch(failChild);
