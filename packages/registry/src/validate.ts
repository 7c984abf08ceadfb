import { isIP } from 'node:net';
import { InvalidOptionsError } from './errors.js';
import { requiredDurationOption } from './options.js';
import type {
  HealthCheckSpec,
  InstanceFilter,
  RegistryLogger,
  ServiceInstance,
  ServiceInstanceInput,
} from './types.js';

// DNS-label-like: Consul warns on names that are not DNS compatible, and the local registry
// uses them in file contents; keeping one rule for every adapter keeps services portable. No dots,
// although Consul catalogs hold names like "web.v1": the client's dispatcher tells a service
// (http://<service>/path) from a real host name by them.
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
// Ids become file names in the local registry: no slash, no leading dot, bounded length. A
// leading underscore (Nomad's "_nomad-task-...") and "@" (a Consul id qualified by its node when
// several nodes use it) are allowed.
const INSTANCE_ID = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
export const MAX_INSTANCE_ID_LENGTH = 128;
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const META_KEY = /^[A-Za-z0-9_-]{1,128}$/;
// Control characters would let a tag or meta value forge headers or log lines downstream.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const MAX_META_VALUE = 512;
const MAX_TAG = 255;
/**
 * The meta key naming the scheme callers use to reach the instance (absent: http). Anything but
 * http or https is refused here, so an entry asking to be reached some other way is never dialled.
 */
export const SCHEME_META_KEY = 'scheme';
const SCHEMES: readonly string[] = ['http', 'https'];

export type Validation<T> = { ok: true; value: T } | { ok: false; field: string; reason: string };

function fail<T>(field: string, reason: string): Validation<T> {
  return { ok: false, field, reason };
}

export function isValidServiceName(name: unknown): name is string {
  return typeof name === 'string' && SERVICE_NAME.test(name);
}

export function isValidInstanceId(id: unknown): id is string {
  return typeof id === 'string' && INSTANCE_ID.test(id);
}

/** The scheme to reach a validated instance with: `meta.scheme`, else http. */
export function schemeOf(instance: ServiceInstance): 'http' | 'https' {
  return instance.meta[SCHEME_META_KEY] === 'https' ? 'https' : 'http';
}

export function isValidPort(port: unknown): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** An IP literal or an RFC 1123 host name; never a URL, never something with a scheme or path. */
export function isValidAddress(address: unknown): address is string {
  if (typeof address !== 'string' || address.length === 0 || address.length > 253) return false;
  if (isIP(address) !== 0) return true;
  // A dotted-quad that isIP rejected (e.g. 999.1.1.1) must not slip through as a host name.
  if (/^[0-9.]+$/.test(address)) return false;
  return address.split('.').every((label) => HOST_LABEL.test(label));
}

/**
 * Instances this module produced: deeply frozen and valid, so reading one again (a registry that
 * keeps them, a watch comparing two answers) needs no second check and no second key.
 */
const produced = new WeakMap<object, string | undefined>();

/** Checks untrusted data (a registry entry, user input) and returns a frozen, normalised instance. */
export function parseInstance(raw: unknown): Validation<ServiceInstance> {
  if (raw === null || typeof raw !== 'object') return fail('instance', 'must be an object');
  if (produced.has(raw)) return { ok: true, value: raw as ServiceInstance };
  const r = raw as Record<string, unknown>;
  if (!isValidInstanceId(r.id)) return fail('id', `invalid instance id ${describe(r.id)}`);
  if (!isValidServiceName(r.service)) return fail('service', `invalid service name ${describe(r.service)}`);
  if (!isValidAddress(r.address)) return fail('address', `invalid address ${describe(r.address)}`);
  if (!isValidPort(r.port)) return fail('port', `port must be an integer in 1..65535, got ${describe(r.port)}`);
  const tags = r.tags ?? [];
  if (!Array.isArray(tags)) return fail('tags', 'must be an array of strings');
  for (const [i, tag] of tags.entries()) {
    if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_TAG || CONTROL_CHARS.test(tag)) {
      return fail(`tags[${i}]`, `invalid tag ${describe(tag)}`);
    }
  }
  const metaRaw = r.meta ?? {};
  if (metaRaw === null || typeof metaRaw !== 'object' || Array.isArray(metaRaw)) {
    return fail('meta', 'must be an object of string values');
  }
  const meta: Record<string, string> = {};
  for (const [key, value] of Object.entries(metaRaw)) {
    if (!META_KEY.test(key)) return fail(`meta.${key}`, 'meta keys are letters, digits, _ and -, at most 128');
    if (typeof value !== 'string' || value.length > MAX_META_VALUE || CONTROL_CHARS.test(value)) {
      return fail(`meta.${key}`, `meta values are strings of at most ${MAX_META_VALUE} chars without control characters`);
    }
    meta[key] = value;
  }
  if (meta[SCHEME_META_KEY] !== undefined && !SCHEMES.includes(meta[SCHEME_META_KEY])) {
    return fail(`meta.${SCHEME_META_KEY}`, `scheme must be http or https, got ${describe(meta[SCHEME_META_KEY])}`);
  }
  const value: ServiceInstance = Object.freeze({
    id: r.id,
    service: r.service,
    address: r.address,
    port: r.port,
    tags: Object.freeze([...(tags as string[])]),
    meta: Object.freeze(meta),
  });
  produced.set(value, undefined);
  return { ok: true, value };
}

/** For trusted call sites (`register`): throws `InvalidOptionsError` naming the field. */
export function validateInstanceInput(input: ServiceInstanceInput): ServiceInstance {
  const result = parseInstance(input);
  if (!result.ok) throw new InvalidOptionsError(`instance.${result.field}`, result.reason);
  return result.value;
}

export function validateServiceName(name: unknown, field = 'service'): string {
  if (!isValidServiceName(name)) {
    throw new InvalidOptionsError(
      field,
      `invalid service name ${describe(name)}: use 1..63 letters, digits, _ or -, starting with a letter or digit`,
    );
  }
  return name;
}

export function validateInstanceId(id: unknown, field = 'id'): string {
  if (!isValidInstanceId(id)) {
    throw new InvalidOptionsError(field, `invalid instance id ${describe(id)}: use 1..128 letters, digits, _ . : @ or -, not starting with . : @ or -`);
  }
  return id;
}

export interface NormalisedCheck {
  http?: { target: { path: string } | { url: string }; intervalMs: number; timeoutMs: number };
  ttlMs?: number;
  deregisterCriticalAfterMs?: number;
}

export function validateCheckSpec(check: HealthCheckSpec | undefined, field = 'check'): NormalisedCheck {
  if (check === null || typeof check !== 'object') {
    throw new InvalidOptionsError(field, 'a health check is required: give http, ttlMs, or both');
  }
  if (check.http === undefined && check.ttlMs === undefined) {
    throw new InvalidOptionsError(field, 'give http, ttlMs, or both');
  }
  const out: NormalisedCheck = {};
  if (check.http !== undefined) {
    const http = check.http;
    if (http === null || typeof http !== 'object') throw new InvalidOptionsError(`${field}.http`, 'must be an object');
    const intervalMs = requiredDurationOption(`${field}.http.intervalMs`, http.intervalMs);
    const timeoutMs =
      http.timeoutMs === undefined
        ? Math.min(10_000, intervalMs)
        : requiredDurationOption(`${field}.http.timeoutMs`, http.timeoutMs);
    if (http.path !== undefined && http.url !== undefined) {
      throw new InvalidOptionsError(`${field}.http`, 'give path or url, not both');
    }
    let target: { path: string } | { url: string };
    if (http.url !== undefined) {
      let url: URL;
      try {
        url = new URL(http.url);
      } catch (cause) {
        throw new InvalidOptionsError(`${field}.http.url`, `not a URL: ${describe(http.url)}`, { cause });
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new InvalidOptionsError(`${field}.http.url`, `scheme must be http or https, got ${url.protocol}`);
      }
      target = { url: url.href };
    } else {
      const path = http.path ?? '/health';
      if (typeof path !== 'string' || !path.startsWith('/') || CONTROL_CHARS.test(path) || /\s/.test(path)) {
        throw new InvalidOptionsError(`${field}.http.path`, `must start with / and hold no spaces, got ${describe(path)}`);
      }
      target = { path };
    }
    out.http = { target, intervalMs, timeoutMs };
  }
  if (check.ttlMs !== undefined) out.ttlMs = requiredDurationOption(`${field}.ttlMs`, check.ttlMs);
  if (check.deregisterCriticalAfterMs !== undefined) {
    out.deregisterCriticalAfterMs = requiredDurationOption(`${field}.deregisterCriticalAfterMs`, check.deregisterCriticalAfterMs);
  }
  return out;
}

export function validateFilter(filter: InstanceFilter | undefined, field = 'filter'): InstanceFilter | undefined {
  if (filter === undefined) return undefined;
  if (filter === null || typeof filter !== 'object') throw new InvalidOptionsError(field, 'must be an object');
  if (filter.tags !== undefined && (!Array.isArray(filter.tags) || filter.tags.some((t) => typeof t !== 'string'))) {
    throw new InvalidOptionsError(`${field}.tags`, 'must be an array of strings');
  }
  if (filter.meta !== undefined) {
    if (filter.meta === null || typeof filter.meta !== 'object') {
      throw new InvalidOptionsError(`${field}.meta`, 'must be an object of strings');
    }
    for (const [k, v] of Object.entries(filter.meta)) {
      if (typeof v !== 'string') throw new InvalidOptionsError(`${field}.meta.${k}`, 'must be a string');
    }
  }
  return filter;
}

export function matchesFilter(instance: ServiceInstance, filter: InstanceFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.tags && !filter.tags.every((tag) => instance.tags.includes(tag))) return false;
  if (filter.meta) {
    for (const [key, value] of Object.entries(filter.meta)) if (instance.meta[key] !== value) return false;
  }
  return true;
}

/**
 * Validates raw entries from a backend: valid ones come back sorted by id, invalid ones are
 * reported once each through `logger` and dropped, so nothing invalid is ever dialled.
 */
export function acceptInstances(
  raws: Iterable<unknown>,
  source: string,
  logger: RegistryLogger,
  filter?: InstanceFilter,
): ServiceInstance[] {
  const accepted: ServiceInstance[] = [];
  for (const raw of raws) {
    const result = parseInstance(raw);
    if (!result.ok) {
      logger.warn(`dropped invalid instance from ${source}: ${result.field}: ${result.reason}`, {
        source,
        field: result.field,
      });
      continue;
    }
    if (matchesFilter(result.value, filter)) accepted.push(result.value);
  }
  accepted.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return accepted;
}

/** True when two sorted instance lists hold the same data: used to skip no-op watch updates. */
export function sameInstances(a: readonly ServiceInstance[], b: readonly ServiceInstance[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && instanceKey(a[i]!) !== instanceKey(b[i]!)) return false;
  }
  return true;
}

function instanceKey(i: ServiceInstance): string {
  // A produced instance is frozen: its key is computed once (a watch compares every answer).
  const known = produced.get(i);
  if (known !== undefined) return known;
  const key = JSON.stringify([i.id, i.service, i.address, i.port, i.tags, Object.entries(i.meta).sort()]);
  if (produced.has(i)) produced.set(i, key);
  return key;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return typeof value;
}
