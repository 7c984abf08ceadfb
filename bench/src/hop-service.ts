/**
 * One hop of the 3-hop deadline scenario (issue 15), in its own process: a node:http server
 * behind the peerlb serving steps (the deadline step on or off), doing `workMs` of work in 5 ms
 * slices and then, if it has a `nextPort`, calling the next hop through a peerlb client
 * (deadline propagation on or off). The first caller's deadline (epoch ms) travels in the bench's
 * own `x-bench-deadline-at` header, which each hop forwards by hand: it measures, it does not
 * steer. A slice that ends after that deadline is work nobody waits for.
 *
 * Tells the parent `{ type: 'ready', port }`; answers `{ type: 'report' }` with its counters.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { createClient, type Client } from '@peerlb/client';
import { createServing, currentDeadline } from '@peerlb/registration';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { childConfig, serveChild, toParent } from './child.js';

export interface HopServiceConfig {
  readonly id: string;
  readonly workMs: number;
  readonly nextPort?: number;
  readonly propagate: boolean;
}

const BENCH_DEADLINE = 'x-bench-deadline-at';
const SLICE_MS = 5;
const config = childConfig<HopServiceConfig>();
const counters = { requests: 0, workAfterDeadlineMs: 0, requestsWorkingLate: 0, stoppedByDeadline: 0 };
const epochMs = () => performance.timeOrigin + performance.now();

let client: Client | undefined;
if (config.nextPort !== undefined) {
  client = createClient({
    registry: new MemoryRegistry({
      logger: silentLogger,
      instances: [{ id: 'next', service: 'next', address: '127.0.0.1', port: config.nextPort }],
    }),
    closeRegistry: true,
    logger: silentLogger,
    timeoutMs: 30_000,
    retry: false,
    // Every call here runs into its deadline on purpose: that must not open breakers or eject.
    breaker: false,
    outlier: false,
    propagateDeadline: config.propagate,
  });
}

/** True after `ms`, false as soon as `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal | undefined): Promise<boolean> =>
  delay(ms, true, signal ? { signal } : undefined).catch(() => false);

async function handler(req: IncomingMessage, res: ServerResponse): Promise<void> {
  counters.requests++;
  const header = req.headers[BENCH_DEADLINE];
  const firstDeadline = typeof header === 'string' ? Number(header) : Number.POSITIVE_INFINITY;
  const signal = currentDeadline()?.signal;
  let late = false;
  for (let done = 0; done < config.workMs; done += SLICE_MS) {
    if (!(await sleep(SLICE_MS, signal))) {
      counters.stoppedByDeadline++;
      if (!res.destroyed) res.writeHead(504).end();
      return;
    }
    if (epochMs() > firstDeadline) {
      counters.workAfterDeadlineMs += SLICE_MS;
      late = true;
    }
  }
  if (late) counters.requestsWorkingLate++;
  if (client !== undefined) {
    try {
      const r = await client.request({ service: 'next', path: '/', headers: { [BENCH_DEADLINE]: String(firstDeadline) } });
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`next hop answered ${r.statusCode}`);
    } catch {
      if (!res.destroyed) res.writeHead(504).end();
      return;
    }
  }
  if (!res.destroyed) res.end(config.id);
}

const serving = createServing({ loadReport: false, deadline: config.propagate });
serveChild(createServer(serving.wrap(handler)), (message) => {
  if (message?.type === 'report') toParent({ type: 'report', ...counters });
});
