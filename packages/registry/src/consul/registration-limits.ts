import { InvalidOptionsError } from '../errors.js';
import { isIpv6Host } from './consul-options.js';

// Consul reserves this meta key prefix and allows at most 64 pairs (a 400 otherwise).
const RESERVED_META_PREFIX = 'consul-';
const MAX_META_PAIRS = 64;

/** Consul's own limits on service meta, checked before the agent answers 400. Errors name the key. */
export function validateConsulMeta(meta: Readonly<Record<string, string>>): void {
  const keys = Object.keys(meta);
  if (keys.length > MAX_META_PAIRS) {
    throw new InvalidOptionsError('instance.meta', `Consul allows at most ${MAX_META_PAIRS} meta pairs, got ${keys.length}`);
  }
  const reserved = keys.find((k) => k.startsWith(RESERVED_META_PREFIX));
  if (reserved !== undefined) {
    throw new InvalidOptionsError(`instance.meta.${reserved}`, `the key prefix "${RESERVED_META_PREFIX}" is reserved by Consul`);
  }
}

/** True for a loopback host: 127.0.0.0/8, ::1 (or IPv4-mapped 127.x), localhost. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (bare === 'localhost' || bare.endsWith('.localhost')) return true;
  if (isIpv6Host(bare)) return bare === '::1' || bare.startsWith('::ffff:127.');
  return /^127\.\d+\.\d+\.\d+$/.test(bare);
}
