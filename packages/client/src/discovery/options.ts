import { optionsObject, durationOption } from '@peerlb/registry';
import type { DiscoveryRules } from './service-watch.js';

export interface DiscoveryOptions {
  /** Serve the last good list this long while the registry fails (default 300 000 ms; `Infinity` allowed). */
  maxStalenessMs?: number;
  /** Hold back an empty answer that replaces a non-empty list this long (default 5000 ms; 0 = never). */
  emptyGraceMs?: number;
}

export function resolveDiscoveryOptions(options: DiscoveryOptions | undefined, field = 'discovery'): DiscoveryRules {
  const o = optionsObject(field, options);
  const maxStalenessMs = durationOption(`${field}.maxStalenessMs`, o.maxStalenessMs, 300_000, { allowInfinity: true });
  const emptyGraceMs = durationOption(`${field}.emptyGraceMs`, o.emptyGraceMs, 5000, { allowZero: true });
  return Object.freeze({ maxStalenessMs, emptyGraceMs });
}
