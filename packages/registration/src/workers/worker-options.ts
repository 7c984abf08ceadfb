import { availableParallelism, hostname } from 'node:os';
import { InvalidOptionsError } from '@peerlb/registry';

/** Environment variable a primary sets on each worker it forks: the worker's index. */
export const WORKER_INDEX_ENV = 'PEERLB_WORKER_INDEX';

/** How a primary restarts workers that die. */
export interface WorkerRestartOptions {
  /** First delay before restarting a dead worker; doubles per recent crash. Default 100 ms. */
  minDelayMs?: number;
  /** Cap on that delay. Default 5 000 ms. */
  maxDelayMs?: number;
  /** A worker slot that died more than this many times within `windowMs` is not restarted again. Default 5. */
  maxRestarts?: number;
  /** Default 60 000 ms. */
  windowMs?: number;
}

export interface ResolvedRestart {
  minDelayMs: number;
  maxDelayMs: number;
  maxRestarts: number;
  windowMs: number;
}

/** `workers: n | 'auto'` as a count ('auto': the CPUs this process may use). */
export function resolveWorkerCount(value: unknown): number {
  if (value === 'auto') return availableParallelism();
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 256) {
    throw new InvalidOptionsError('workers', `must be an integer in 1..256 or 'auto', got ${JSON.stringify(value)}`);
  }
  return value;
}

export function resolveRestart(value: unknown): ResolvedRestart {
  if (value === undefined) return { minDelayMs: 100, maxDelayMs: 5_000, maxRestarts: 5, windowMs: 60_000 };
  if (value === null || typeof value !== 'object') throw new InvalidOptionsError('workerRestart', 'must be an object');
  const o = value as WorkerRestartOptions;
  const num = (v: unknown, field: string, fallback: number, min: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
      throw new InvalidOptionsError(`workerRestart.${field}`, `must be a number >= ${min}, got ${String(v)}`);
    }
    return v;
  };
  const minDelayMs = num(o.minDelayMs, 'minDelayMs', 100, 0);
  const maxDelayMs = num(o.maxDelayMs, 'maxDelayMs', Math.max(5_000, minDelayMs), minDelayMs);
  return {
    minDelayMs,
    maxDelayMs,
    maxRestarts: num(o.maxRestarts, 'maxRestarts', 5, 0),
    windowMs: num(o.windowMs, 'windowMs', 60_000, 1),
  };
}

/** The worker index this process was forked with by a peerlb primary, if any. */
export function workerIndexFromEnv(): number | undefined {
  const raw = process.env[WORKER_INDEX_ENV];
  if (raw === undefined || !/^\d{1,3}$/.test(raw)) return undefined;
  return Number(raw);
}

/** What a worker adds to its instance's meta, so callers and operators can tell workers apart. */
export function workerMeta(index: number): Record<string, string> {
  return { host: hostname(), worker: String(index), pid: String(process.pid) };
}
