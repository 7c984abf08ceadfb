import { createHash } from 'node:crypto';
import { httpCheckUrl } from '../checks/http-check.js';
import type { ServiceInstance } from '../types.js';
import type { NormalisedCheck } from '../validate.js';

/** One check of a service registration, in Consul's terms (durations as Go strings). */
export type ConsulCheckRegistration = {
  checkId: string;
  name: string;
  deregisterCriticalServiceAfter?: string;
} & ({ kind: 'http'; http: string; interval: string; timeout: string } | { kind: 'ttl'; ttl: string });

/** The body of `PUT /v1/agent/service/register`, in Consul's terms. */
export interface ConsulServiceRegistration {
  id: string;
  name: string;
  tags: string[];
  address: string;
  port: number;
  meta: Record<string, string>;
  checks: ConsulCheckRegistration[];
}

/**
 * Explicit check ids, so a heartbeat knows which check is the TTL one without asking the agent.
 * Consul rejects Interval and TTL in one check, so an instance with both gets two checks.
 */
export function ttlCheckId(instanceId: string): string {
  return `service:${instanceId}:ttl`;
}

export function httpCheckId(instanceId: string): string {
  return `service:${instanceId}:http`;
}

/** Milliseconds as a Go duration string ("10s", "1500ms"): a bare JSON number would mean nanoseconds to Consul. */
export function goDuration(ms: number): string {
  if (Number.isInteger(ms)) return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
  return `${Math.max(1, Math.round(ms * 1000))}us`;
}

export function serviceRegistration(instance: ServiceInstance, check: NormalisedCheck): ConsulServiceRegistration {
  const reap =
    check.deregisterCriticalAfterMs === undefined
      ? {}
      : { deregisterCriticalServiceAfter: goDuration(check.deregisterCriticalAfterMs) };
  const checks: ConsulCheckRegistration[] = [];
  if (check.http) {
    checks.push({
      kind: 'http',
      checkId: httpCheckId(instance.id),
      name: `${instance.service} HTTP check`,
      http: httpCheckUrl(check.http.target, instance.address, instance.port),
      interval: goDuration(check.http.intervalMs),
      timeout: goDuration(check.http.timeoutMs),
      ...reap,
    });
  }
  if (check.ttlMs !== undefined) {
    checks.push({
      kind: 'ttl',
      checkId: ttlCheckId(instance.id),
      name: `${instance.service} TTL check`,
      ttl: goDuration(check.ttlMs),
      ...reap,
    });
  }
  return {
    id: instance.id,
    name: instance.service,
    tags: [...instance.tags],
    address: instance.address,
    port: instance.port,
    meta: { ...instance.meta },
    checks,
  };
}

/**
 * One `/v1/health/service` entry as an unvalidated instance, for validation to judge. Never
 * throws: a malformed entry maps to something validation rejects and reports.
 */
export function instanceFromHealthEntry(entry: unknown): unknown {
  if (!isRecord(entry)) return entry;
  const service = isRecord(entry.Service) ? entry.Service : {};
  const node = isRecord(entry.Node) ? entry.Node : {};
  // Consul's rule: an empty service address means "use the node's address".
  const address = typeof service.Address === 'string' && service.Address !== '' ? service.Address : node.Address;
  return {
    id: service.ID,
    service: service.Service,
    address,
    port: service.Port,
    // Agents send null for empty meta (1.8: always when none was given); other tools write empty
    // tags, which say nothing and would fail the whole entry.
    tags: Array.isArray(service.Tags) ? service.Tags.filter((t) => t !== '') : (service.Tags ?? undefined),
    meta: service.Meta ?? undefined,
  };
}

/**
 * Whether `entry` has the shape of a health entry at all (an object with a `Service` object).
 * A well-formed entry we cannot use (port 0, a URL as address) is another tool's data; anything
 * else means the answer itself is garbled.
 */
export function isHealthEntry(entry: unknown): boolean {
  return isRecord(entry) && isRecord(entry.Service);
}

/** The node an entry lives on (`Node.Node`), if it says. */
export function nodeOfEntry(entry: unknown): string | undefined {
  if (!isRecord(entry) || !isRecord(entry.Node)) return undefined;
  return typeof entry.Node.Node === 'string' && entry.Node.Node !== '' ? entry.Node.Node : undefined;
}

/**
 * The id an instance gets when its `Service.ID` is on several nodes at once: Consul ids are unique
 * per agent only (and default to the service name), but a caller keys peers by id. `id@node`,
 * with the node made id-safe, shortened to a digest when the whole would be too long.
 */
export function nodeQualifiedId(id: string, node: string | undefined, maxLength: number): string {
  const safe = (node ?? 'unknown-node').replace(/[^A-Za-z0-9_.:-]/g, '-');
  const full = `${id}@${safe}`;
  if (full.length <= maxLength) return full;
  const short = `${id}@${createHash('sha1').update(node ?? '').digest('hex').slice(0, 12)}`;
  return short.length <= maxLength ? short : `${id.slice(0, maxLength - 13)}@${short.slice(short.length - 12)}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
