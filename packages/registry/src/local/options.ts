import { resolve } from 'node:path';
import { InvalidOptionsError } from '../errors.js';
import { consoleLogger } from '../logger.js';
import type { RegistryLogger } from '../types.js';
import { durationOption } from '../options.js';
import { defaultRegistryDir } from './directory.js';

export interface LocalRegistryOptions {
  /** The registry directory. Default: env `PEERLB_REGISTRY_DIR`, else `<os tmpdir>/peerlb-registry-<uid>`. */
  dir?: string;
  /** Full rescan period beside `fs.watch`, which misses events on some file systems (default 500). */
  rescanIntervalMs?: number;
  /** Where skipped files and failed check writes are reported (default: stderr). */
  logger?: RegistryLogger;
  /** Environment to read `PEERLB_REGISTRY_DIR` from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Clock for check expiry and leases (default `Date.now`); every process sharing a directory must agree on it. */
  now?: () => number;
}

export interface ResolvedLocalOptions {
  dir: string;
  rescanIntervalMs: number;
  logger: RegistryLogger;
  now: () => number;
}

// Below this a rescan loop would mostly burn CPU; fs.watch carries the fast path anyway.
const MIN_RESCAN_MS = 10;

export function resolveLocalOptions(options: LocalRegistryOptions | undefined): ResolvedLocalOptions {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
  const env = options.env ?? process.env;
  if (env === null || typeof env !== 'object') throw new InvalidOptionsError('env', 'must be an object');

  let dir: string;
  if (options.dir !== undefined) {
    dir = validateDir(options.dir, 'dir');
  } else {
    const fromEnv = env.PEERLB_REGISTRY_DIR;
    if (fromEnv !== undefined && fromEnv !== '') validateDir(fromEnv, 'env.PEERLB_REGISTRY_DIR');
    dir = defaultRegistryDir(env);
  }

  const rescanIntervalMs =
    durationOption('rescanIntervalMs', options.rescanIntervalMs, 500);
  if (rescanIntervalMs < MIN_RESCAN_MS) {
    throw new InvalidOptionsError('rescanIntervalMs', `must be at least ${MIN_RESCAN_MS} ms, got ${rescanIntervalMs}`);
  }

  const given = options.logger ?? consoleLogger;
  if (given === null || typeof given !== 'object' || typeof given.warn !== 'function') {
    throw new InvalidOptionsError('logger', 'must be an object with a warn(message, details) method');
  }
  // Warnings are sent from timers and check loops: a logger that throws must not take them down.
  const logger: RegistryLogger = {
    warn(message, details) {
      try {
        given.warn(message, details);
      } catch {
        // Nowhere left to report it.
      }
    },
  };
  const now = options.now ?? Date.now;
  if (typeof now !== 'function') throw new InvalidOptionsError('now', 'must be a function returning epoch milliseconds');

  return { dir, rescanIntervalMs, logger, now };
}

function validateDir(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidOptionsError(field, 'must be a non-empty path');
  if (value.includes('\0')) throw new InvalidOptionsError(field, 'must not contain NUL characters');
  return resolve(value);
}
