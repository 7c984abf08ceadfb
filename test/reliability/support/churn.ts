import { join } from 'node:path';
import { expect } from 'vitest';
import { openBackend, type Backend } from './backends.js';
import { readAcked, readLedgers } from './ledger.js';
import { Instance, killAll, LoadGenerator, seeded, sleep, type LoadReport } from './processes.js';
import { MODE, reportFigures, SOAK } from './mode.js';

const MIN_ALIVE = 3;
const MAX_ALIVE = 6;
const INITIAL = 5;

export interface ChurnResult {
  seed: number;
  actions: { sigkill: number; sigterm: number; start: number };
  report: LoadReport;
}

/**
 * Instances (real processes) of one service are SIGKILLed, SIGTERMed and started at random under a
 * steady load from a separate client process, for `MODE.churnMs`. The schedule comes from a seeded
 * PRNG (seed printed, replayable with PEERLB_CHURN_SEED); at least MIN_ALIVE instances always run.
 */
export async function runChurn(backendName: Backend['name']): Promise<void> {
  const seed = Number(process.env.PEERLB_CHURN_SEED ?? (SOAK ? Date.now() % 1_000_000 : 20_240_607));
  const random = seeded(seed);
  let backend: Backend | undefined;
  try {
    backend = await openBackend(backendName);
    const service = `churn-${backendName}`;
    let ledgers = 0;
    const alive: Instance[] = [];
    const launch = async () => {
      const instance = new Instance({
        service,
        registry: backend!.instanceRef(++ledgers),
        ledger: join(backend!.scratch, `ledger-${ledgers}.txt`),
        check: { ttlMs: 1_000, deregisterCriticalAfterMs: 5_000 },
        drainMs: 300,
      });
      await instance.ready;
      alive.push(instance);
    };
    await Promise.all(Array.from({ length: INITIAL }, launch));

    const ackFile = join(backend.scratch, 'acked.txt');
    const load = new LoadGenerator({
      service,
      registry: backend.ref,
      concurrency: 6,
      pauseMs: 4,
      postEvery: 5,
      warmUpMs: MODE.warmUpMs,
      maxDurationMs: MODE.warmUpMs + MODE.churnMs + 60_000,
      maxRequests: SOAK ? 5_000_000 : 200_000,
      ackFile,
    });
    await load.warm;

    const actions = { sigkill: 0, sigterm: 0, start: 0 };
    const end = Date.now() + MODE.churnMs;
    const maxActions = Math.ceil(MODE.churnMs / 300);
    while (Date.now() < end && actions.sigkill + actions.sigterm + actions.start < maxActions) {
      await sleep(500 + random() * 1_000);
      const r = random();
      const canStop = alive.length > MIN_ALIVE;
      if (canStop && (r < 0.6 || alive.length >= MAX_ALIVE)) {
        const victim = alive.splice(Math.floor(random() * alive.length), 1)[0]!;
        const signal = r < 0.3 ? 'SIGKILL' : 'SIGTERM';
        victim.kill(signal);
        actions[signal === 'SIGKILL' ? 'sigkill' : 'sigterm']++;
      } else if (alive.length < MAX_ALIVE) {
        await launch();
        actions.start++;
      }
    }
    // Let the last removal reach the client, then end the load.
    await sleep(2_000);
    load.stop();
    const report = await load.done;

    const executed = await readLedgers(backend.scratch);
    const duplicates = [...executed].filter(([, n]) => n > 1);
    const acked = await readAcked(ackFile);
    const ackedNotExecuted = acked.filter((id) => executed.get(id) !== 1);
    const heapGrowth = (report.heapEnd - report.heapWarm) / report.heapWarm;
    reportFigures(`churn/${backendName}`, {
      seed,
      churnMs: MODE.churnMs,
      actions,
      requests: report.sent,
      gets: report.get.ok,
      getFailures: report.get.failed,
      postsAcked: report.post.ok,
      postsFailed: report.post.failed,
      postsExecuted: executed.size,
      duplicates: duplicates.length,
      retries: report.retries,
      heapWarmMB: +(report.heapWarm / 2 ** 20).toFixed(2),
      heapEndMB: +(report.heapEnd / 2 ** 20).toFixed(2),
      heapGrowthPct: +(heapGrowth * 100).toFixed(1),
      leaked: report.leaked,
    });

    const context = JSON.stringify({ seed, actions, get: report.get, post: report.post, warnings: report.warnings });
    // The schedule really churned, and the load really ran through it.
    expect(actions.sigkill + actions.sigterm, context).toBeGreaterThan(0);
    expect(actions.start, context).toBeGreaterThan(0);
    expect(report.get.ok, context).toBeGreaterThan(100);
    expect(report.post.ok, context).toBeGreaterThan(10);
    // Zero failed idempotent requests.
    expect(report.get.failures, context).toEqual([]);
    expect(report.get.failed, context).toBe(0);
    // No POST executed twice, and every POST the client saw acknowledged ran exactly once.
    expect(duplicates, context).toEqual([]);
    expect(ackedNotExecuted, context).toEqual([]);
    // Nothing left behind by the client: no socket, timer, watcher or pending request.
    expect(report.leaked, JSON.stringify({ before: report.resourcesBefore, after: report.resourcesAfter })).toEqual({});
    // The heap came back to within 10% of its post-warm-up level.
    expect(heapGrowth, JSON.stringify({ warm: report.heapWarm, end: report.heapEnd })).toBeLessThanOrEqual(0.1);
  } finally {
    await killAll();
    await backend?.close();
  }
}
