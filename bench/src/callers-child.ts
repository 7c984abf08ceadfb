/**
 * Scenario 8, in its own process (run with --expose-gc): 100,000 distinct callers through the
 * client's per-caller rate limiter (`rateLimit`, LRU-bounded by `maxCallers`). Requests go
 * through the mock transport; the heap is read after GC at checkpoints. A second client whose cap
 * is above the number of callers shows what an unbounded table would cost.
 *
 * These two clients run with `breaker: false`: opossum (9.0.0, status.js `increment`) keeps the
 * latency of every call in its rolling window (10 s) whether or not percentiles are enabled, so
 * with breakers on the heap also grows with calls per window, whoever the caller. A third run
 * with default options shows that share.
 */
import { createClient, type Client } from '@peerlb/client';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { childConfig, failChild, toParentFlushed } from './child.js';
import { mockTransport } from './mock-transport.js';
import type { CallerParams } from './params.js';

export interface CallersResult {
  readonly callers: number;
  readonly maxCallers: number;
  /** Heap growth (bytes) since before the first caller, at each checkpoint, with the cap. */
  readonly bounded: Record<string, number>;
  /** The same with the cap above the number of callers. */
  readonly unbounded: Record<string, number>;
  /** The capped client with default options (breakers on). */
  readonly boundedWithBreakers: Record<string, number>;
  /** Rejected calls (should be 0: each caller sends one request into a full bucket). */
  readonly rateLimited: number;
  readonly usPerRequest: number;
}

const config = childConfig<CallerParams>();
const gc = (globalThis as { gc?: () => void }).gc;
const SERVICE = 'callers';

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

function clientWithCap(maxCallers: number, breakers: boolean): Client {
  const registry = new MemoryRegistry({
    logger: silentLogger,
    instances: [0, 1, 2].map((i) => ({ id: `c${i}`, service: SERVICE, address: '127.0.0.1', port: 7000 + i })),
  });
  return createClient({
    registry,
    closeRegistry: true,
    transportFactory: mockTransport,
    logger: silentLogger,
    rateLimit: { ratePerSec: 10, burst: 10, maxCallers },
    ...(breakers ? {} : { breaker: false as const }),
  });
}

async function run(
  maxCallers: number,
  breakers = false,
): Promise<{ growth: Record<string, number>; limited: number; us: number }> {
  const client = clientWithCap(maxCallers, breakers);
  // One call first, so the service's watch, peers and pools exist before the baseline.
  await (await client.request({ service: SERVICE, path: '/', caller: 'warm-up' })).body.text();
  const base = await settledHeap();
  const growth: Record<string, number> = {};
  let limited = 0;
  let next = 0;
  let cpuUs = 0;
  for (const checkpoint of config.checkpoints) {
    const cpu0 = process.cpuUsage();
    const worker = async () => {
      while (next < checkpoint) {
        const caller = `caller-${next++}`;
        try {
          const res = await client.request({ service: SERVICE, path: '/', caller });
          await res.body.text();
        } catch (err) {
          if ((err as { code?: string }).code !== 'PEERLB_RATE_LIMITED') throw err;
          limited++;
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const cpu = process.cpuUsage(cpu0);
    cpuUs += cpu.user + cpu.system;
    growth[String(checkpoint)] = (await settledHeap()) - base;
  }
  await client.close();
  return { growth, limited, us: cpuUs / config.callers };
}

async function main(): Promise<void> {
  if (!gc) throw new Error('run with --expose-gc');
  const bounded = await run(config.maxCallers);
  const unbounded = await run(config.callers * 2);
  const withBreakers = await run(config.maxCallers, true);
  const result: CallersResult = {
    callers: config.callers,
    maxCallers: config.maxCallers,
    bounded: bounded.growth,
    unbounded: unbounded.growth,
    boundedWithBreakers: withBreakers.growth,
    rateLimited: bounded.limited + unbounded.limited + withBreakers.limited,
    usPerRequest: bounded.us,
  };
  await toParentFlushed({ type: 'result', result });
}

main().then(() => process.exit(0), failChild);
