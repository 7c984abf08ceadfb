/**
 * One independent caller process of the load-report scenarios (issue 14): keeps `concurrency`
 * requests in flight for `durationMs` against a service (through a peerlb client with the
 * balancer of `mode`) or against one URL (undici Pool: keep-alive connections to a node:cluster
 * port). Starts on `{ type: 'go' }` so that every caller of a run starts together; answers
 * `{ type: 'result', ... }`: answers per answering pid, latencies summary, errors, CPU.
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { createClient, leastRequests, roundRobin, type Client } from '@peerlb/client';
import { registryFromEnv } from '@peerlb/registry';
import { childConfig, failChild, toParent, toParentFlushed } from './child.js';
import { summarize, type LatencySummary } from './stats.js';

export type CallerMode = 'reports' | 'no-reports' | 'least-requests' | 'round-robin' | 'cluster-port';

export interface CpuCallerConfig {
  readonly mode: CallerMode;
  readonly service: string;
  /** cluster-port mode: where to send. */
  readonly port?: number;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export type CpuCallerResult = {
  readonly type: 'result';
  readonly answers: number;
  /** Answers over the whole run, warm-up included (to divide the servers' CPU by). */
  readonly total: number;
  readonly byPid: Record<string, number>;
  readonly latency: LatencySummary;
  readonly errors: number;
  readonly elapsedMs: number;
  readonly cpuUsPerRequest: number;
};

const config = childConfig<CpuCallerConfig>();

function makeSend(): { send: () => Promise<string>; close: () => Promise<void> } {
  if (config.mode === 'cluster-port') {
    const pool = new Pool(`http://127.0.0.1:${config.port}`, { connections: config.concurrency, keepAliveTimeout: 60_000 });
    return {
      send: async () => (await pool.request({ method: 'GET', path: '/' })).body.text(),
      close: () => pool.close(),
    };
  }
  const client: Client = createClient({
    registry: registryFromEnv(),
    closeRegistry: true,
    ...(config.mode === 'least-requests' ? { balancer: leastRequests() } : {}),
    ...(config.mode === 'round-robin' ? { balancer: roundRobin() } : {}),
    ...(config.mode === 'no-reports' ? { loadReports: false as const } : {}),
    pool: { connections: config.concurrency },
    timeoutMs: 30_000,
  });
  return {
    send: async () => (await client.request({ service: config.service, path: '/' })).body.text(),
    close: () => client.close(),
  };
}

async function main(): Promise<void> {
  const { send, close } = makeSend();
  const byPid: Record<string, number> = {};
  const samples: number[] = [];
  let errors = 0;
  let total = 0;
  let measuring = false;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const t0 = performance.now();
      try {
        const pid = await send();
        total++;
        if (measuring) {
          samples.push(performance.now() - t0);
          byPid[pid] = (byPid[pid] ?? 0) + 1;
        }
      } catch {
        if (measuring) errors++;
      }
    }
  };
  toParent({ type: 'ready' });
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  const loops = Array.from({ length: config.concurrency }, loop);
  await new Promise((r) => setTimeout(r, config.warmupMs));
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, config.durationMs));
  measuring = false;
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  stop = true;
  await Promise.all(loops);
  await close();
  const answers = samples.length;
  const result: CpuCallerResult = {
    type: 'result',
    answers,
    total,
    byPid,
    latency: summarize(Float64Array.from(samples)),
    errors,
    elapsedMs,
    cpuUsPerRequest: answers > 0 ? (cpu.user + cpu.system) / answers : Number.NaN,
  };
  await toParentFlushed(result);
  process.exit(0);
}

main().catch(failChild);
