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
 * One `/v1/health/service` entry as an unvalidated instance, for `acceptInstances` to judge.
 * Never throws: a malformed entry maps to something validation rejects and reports.
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
    // Older agents send null for empty tags/meta; validation treats absent as empty.
    tags: service.Tags ?? undefined,
    meta: service.Meta ?? undefined,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
