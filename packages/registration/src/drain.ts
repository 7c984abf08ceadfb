import type { ServerResponse } from 'node:http';
import { sleep } from '@peerlb/registry';

/** Counts the responses the server still owes (the health endpoint's aside). */
export class InFlight {
  private count = 0;
  private readonly idleWaiters = new Set<() => void>();

  get size(): number {
    return this.count;
  }

  /** Counts `res` until it is sent or its connection closes, whichever comes first. */
  track(res: ServerResponse): void {
    this.count++;
    res.once('close', () => {
      this.count--;
      if (this.count === 0) for (const wake of [...this.idleWaiters]) wake();
    });
  }

  /** Resolves once nothing is in flight (at once when nothing is); rejects when `signal` aborts. */
  whenIdle(signal: AbortSignal): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        this.idleWaiters.delete(done);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.idleWaiters.delete(done);
        reject(signal.reason);
      };
      this.idleWaiters.add(done);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

export interface DrainPlan {
  /** The longest the drain lasts (`drainMs`). */
  drainMs: number;
  /** How long callers' watches may take to drop a removed instance (`drainPropagationMs`). */
  propagationMs: number;
  /** The registry confirmed the deregistration. */
  deregistered: boolean;
  inFlight: InFlight;
}

/**
 * The drain after deregistration: keep serving callers that have not yet seen the removal. It used
 * to be a fixed `drainMs` even with nothing left to wait for. It now ends early once it is provably
 * done, which takes all three of:
 *
 * 1. the registry confirmed the deregistration (a failed one could leave the instance listed, so
 *    callers would keep coming: then the full `drainMs` is served);
 * 2. `propagationMs` passed since: the time a caller's watch needs to see a removal (a local
 *    registry watcher sees it through fs.watch within milliseconds, or by its next rescan, every
 *    500 ms by default; a Consul blocking query returns as soon as the catalog changes). Until then
 *    a new request may still arrive at any moment;
 * 3. nothing is in flight: every response owed has been sent.
 *
 * Whatever comes later still meets a closed port, which a peerlb caller retries elsewhere (nothing
 * was sent). Resolves `true` when it ended early.
 */
export async function drain(plan: DrainPlan): Promise<boolean> {
  const { drainMs, propagationMs } = plan;
  if (!plan.deregistered || propagationMs >= drainMs) {
    await sleep(drainMs);
    return false;
  }
  await sleep(propagationMs);
  const stop = new AbortController();
  try {
    return await Promise.race([
      plan.inFlight.whenIdle(stop.signal).then(() => true),
      sleep(drainMs - propagationMs, stop.signal).then(() => false),
    ]);
  } finally {
    stop.abort();
  }
}
