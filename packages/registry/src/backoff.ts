import { AbortedError } from './errors.js';

export interface BackoffOptions {
  /** First delay (default 250 ms). */
  minMs?: number;
  /** Cap (default 10 s). */
  maxMs?: number;
}

/** "Full jitter" exponential backoff: spreads retries of many clients after a shared outage. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const min = options.minMs ?? 250;
  const max = options.maxMs ?? 10_000;
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return min / 2 + random() * (ceiling - min / 2);
}

/** Resolves after `ms`, or rejects with `AbortedError` when `signal` fires. The timer is unref'd. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortedError(signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
