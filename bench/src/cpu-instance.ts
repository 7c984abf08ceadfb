/**
 * A CPU-bound service for the load-report scenarios (issue 14), in its own process: every request
 * busy-loops the event loop for `costMs` (what a real single-threaded server does with CPU work)
 * and answers its pid. Three modes:
 *
 * - `instance`: `startService` of @peerlb/registration (registry from PEERLB_REGISTRY_DIR),
 *   reporting its load unless `loadReport: false`.
 * - `workers`: the same with `workers: n` (node:cluster workers as peers, each its own port).
 * - `cluster`: plain node:cluster, the workers sharing one port (Node's own balancing of
 *   connections), no registry.
 *
 * IPC: `{ type: 'ready', port? }` once serving; on `{ type: 'elu' }` answers
 * `{ type: 'elu', utilization }`: this process's event-loop utilization since the previous ask.
 */
import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { startService } from '@peerlb/registration';
import { childConfig, failChild, toParent } from './child.js';

export interface CpuInstanceConfig {
  readonly mode: 'instance' | 'workers' | 'cluster';
  readonly service: string;
  readonly costMs: number;
  readonly workers?: number;
  readonly loadReport?: boolean;
}

const config = childConfig<CpuInstanceConfig>();
const body = Buffer.from(String(process.pid));

function handler(_req: IncomingMessage, res: ServerResponse): void {
  const until = performance.now() + config.costMs;
  while (performance.now() < until) {
    // The request's CPU work.
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
  res.end(body);
}

let lastElu = performance.eventLoopUtilization();
process.on('message', (message: { type?: string }) => {
  if (message?.type !== 'elu') return;
  const now = performance.eventLoopUtilization();
  const utilization = performance.eventLoopUtilization(now, lastElu).utilization;
  lastElu = now;
  toParent({ type: 'elu', utilization });
});

async function main(): Promise<void> {
  if (config.mode === 'cluster') {
    if (cluster.isPrimary) {
      const n = config.workers ?? 2;
      let listening = 0;
      for (let i = 0; i < n; i++) cluster.fork().on('listening', (address) => {
        if (++listening === n) toParent({ type: 'ready', port: address.port });
      });
      return;
    }
    const server = createServer(handler);
    server.keepAliveTimeout = 60_000;
    // Every worker listens on the same port: the primary hands out connections round robin.
    server.listen(Number(process.env.BENCH_CLUSTER_PORT ?? 0), '127.0.0.1');
    return;
  }
  const common = {
    service: config.service,
    handler,
    check: { ttlMs: 2_000 },
    drainMs: 0,
    ...(config.loadReport === false ? { serving: { loadReport: false } } : {}),
  };
  if (config.mode === 'workers') {
    const started = await startService({ ...common, workers: config.workers ?? 2 });
    if ('primary' in started) toParent({ type: 'ready' });
    return;
  }
  const started = await startService(common);
  started.server.keepAliveTimeout = 60_000;
  toParent({ type: 'ready', port: started.port });
}

main().catch(failChild);
