import { InvalidOptionsError, validateDurationMs } from '@peerlb/registry';
import type { DiscoveryRules } from './service-watch.js';

export interface DiscoveryOptions {
  /** Serve the last good list this long while the registry fails (default 300 000 ms; `Infinity` allowed). */
  maxStalenessMs?: number;
  /** Hold back an empty answer that replaces a non-empty list this long (default 5000 ms; 0 = never). */
  emptyGraceMs?: number;
}

export function resolveDiscoveryOptions(options: DiscoveryOptions | undefined, field = 'discovery'): DiscoveryRules {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(field, 'must be an object');
  const maxStalenessMs =
    options.maxStalenessMs === Infinity
      ? Infinity
      : validateDurationMs(options.maxStalenessMs ?? 300_000, `${field}.maxStalenessMs`);
  const emptyGraceMs = options.emptyGraceMs ?? 5000;
  if (emptyGraceMs !== 0) validateDurationMs(emptyGraceMs, `${field}.emptyGraceMs`);
  return Object.freeze({ maxStalenessMs, emptyGraceMs });
}
