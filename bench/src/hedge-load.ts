/**
 * A load process for the tail and overload scenarios (issue 15): one peerlb client (static
 * registry of the upstreams), with or without hedging, `concurrency` closed-loop workers, a
 * warm-up of `warmupRequests`, then `requests` measured calls. Reports latency percentiles,
 * successful calls per second, errors and the client's hedge counters.
 */
import { createClient, type HedgeOptions } from '@peerlb/client';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { childConfig, failChild, toParentFlushed } from './child.js';
import { SampleBuffer, percentile } from './stats.js';
import type { Target } from './upstreams.js';

export interface HedgeLoadSpec {
  readonly label: string;
  readonly service: string;
  readonly targets: readonly Target[];
  readonly concurrency: number;
  readonly warmupRequests: number;
  readonly requests: number;
  readonly timeoutMs: number;
  readonly hedge: HedgeOptions | undefined;
}

export interface HedgeLoadResult {
  readonly label: string;
  readonly calls: number;
  readonly ok: number;
  readonly errors: number;
  readonly elapsedMs: number;
  /** Successful calls per second. */
  readonly goodput: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly hedges: { readonly sent: number; readonly won: number; readonly cancelled: number };
  readonly retries: number;
}

const spec = childConfig<HedgeLoadSpec>();

async function main(): Promise<void> {
  const registry = new MemoryRegistry({
    logger: silentLogger,
    instances: spec.targets.map((t) => ({ id: t.id, service: spec.service, address: '127.0.0.1', port: t.port })),
  });
  const client = createClient({
    registry,
    closeRegistry: true,
    logger: silentLogger,
    timeoutMs: spec.timeoutMs,
    pool: { connections: 64 },
    ...(spec.hedge ? { hedge: spec.hedge } : {}),
  });
  const latencies = new SampleBuffer();
  let issued = 0;
  let ok = 0;
  let errors = 0;
  const total = spec.warmupRequests + spec.requests;
  let measuredFrom = Number.NaN;
  let before = { sent: 0, won: 0, cancelled: 0, retries: 0 };
  const snapshot = () => {
    const s = client.stats().services[spec.service];
    return { sent: s?.hedges.sent ?? 0, won: s?.hedges.won ?? 0, cancelled: s?.hedges.cancelled ?? 0, retries: s?.retries ?? 0 };
  };
  const worker = async () => {
    while (issued < total) {
      const n = issued++;
      if (n === spec.warmupRequests) {
        measuredFrom = performance.now();
        before = snapshot();
      }
      const measured = n >= spec.warmupRequests;
      const started = performance.now();
      try {
        const res = await client.request({ service: spec.service, path: '/' });
        await res.body.dump();
        if (measured) {
          if (res.statusCode === 200) ok++;
          else errors++;
        }
      } catch {
        if (measured) errors++;
      }
      if (measured) latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const elapsedMs = performance.now() - measuredFrom;
  const after = snapshot();
  const sorted = latencies.values().slice().sort();
  await client.close();
  const result: HedgeLoadResult = {
    label: spec.label,
    calls: spec.requests,
    ok,
    errors,
    elapsedMs,
    goodput: (ok * 1000) / elapsedMs,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    hedges: { sent: after.sent - before.sent, won: after.won - before.won, cancelled: after.cancelled - before.cancelled },
    retries: after.retries - before.retries,
  };
  await toParentFlushed({ type: 'result', result });
  process.exit(0);
}

main().catch(failChild);
