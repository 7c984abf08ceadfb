import { join } from 'node:path';
import type { Backend } from './backends.js';
import { MODE } from './mode.js';
import { Instance, LoadGenerator } from './processes.js';

/** Three instances of `service` (real processes) on a 1 s TTL check, once every one is ready. */
export async function startOutageInstances(
  backend: Backend,
  service: string,
  deregisterCriticalAfterMs: number,
): Promise<Instance[]> {
  const instances = Array.from(
    { length: 3 },
    (_, i) =>
      new Instance({
        service,
        registry: backend.ref,
        ledger: join(backend.scratch, `ledger-${i}.txt`),
        check: { ttlMs: 1_000, deregisterCriticalAfterMs },
      }),
  );
  await Promise.all(instances.map((i) => i.ready));
  return instances;
}

/**
 * A warmed-up load on `service` from its own process, long enough to outlast the outage. The
 * client may serve its stale list for the whole outage and a minute more, so a failed request
 * means the client got something wrong, not that its staleness limit ran out.
 */
export async function startOutageLoad(backend: Backend, service: string): Promise<LoadGenerator> {
  const load = new LoadGenerator({
    service,
    registry: backend.ref,
    concurrency: 4,
    pauseMs: 5,
    postEvery: 10,
    warmUpMs: 2_000,
    maxDurationMs: MODE.outageMs + 90_000,
    maxRequests: 2_000_000,
    client: { discovery: { maxStalenessMs: MODE.outageMs + 60_000 } },
  });
  await load.warm;
  return load;
}
