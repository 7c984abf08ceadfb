import { RegistryUnavailableError } from '../errors.js';
import type { ServiceInstance } from '../types.js';
import { MAX_INSTANCE_ID_LENGTH, parseInstance } from '../validate.js';
import { instanceFromHealthEntry, isHealthEntry, nodeOfEntry, nodeQualifiedId } from './consul-mapping.js';
import type { OncePerEntry } from './once-per-entry.js';

/**
 * The usable instances of a `/v1/health/service/:name` answer, sorted by id. Entries other tools
 * wrote (port 0, odd ids) are dropped and reported through `dropped` (once per distinct entry);
 * an answer of such entries only is an empty service, not an error, so it cannot stall a watch.
 * An answer with garbage in place of entries and nothing usable is an error: it leaves watchers
 * serving what they had. A `Service.ID` on several nodes (Consul ids are unique per agent only)
 * becomes `id@node` on each of them.
 */
export function instancesFromHealthAnswer(service: string, body: unknown, dropped: OncePerEntry): ServiceInstance[] {
  if (!Array.isArray(body)) {
    throw new RegistryUnavailableError(`consul GET /v1/health/service/${service}: expected a JSON array`);
  }
  const what = `a consul read of "${service}"`;
  const valid: Array<{ instance: ServiceInstance; node: string | undefined }> = [];
  let garbled = false;
  dropped.begin();
  for (const entry of body) {
    if (!isHealthEntry(entry)) garbled = true;
    const raw = instanceFromHealthEntry(entry);
    const name = (raw as { service?: unknown } | null)?.service;
    // Consul matches service names case-insensitively; anything else is not what we asked for.
    if (typeof name === 'string' && name.toLowerCase() !== service.toLowerCase()) {
      dropped.report(entry, () => `dropped instance of service ${JSON.stringify(name)} from ${what}`, { source: 'consul' });
      continue;
    }
    const result = parseInstance(raw);
    if (!result.ok) {
      dropped.report(entry, () => `dropped invalid instance from consul: ${result.field}: ${result.reason}`, {
        source: 'consul',
        field: result.field,
      });
      continue;
    }
    valid.push({ instance: result.value, node: nodeOfEntry(entry) });
  }
  dropped.end(what);
  if (garbled && valid.length === 0) {
    throw new RegistryUnavailableError(`consul GET /v1/health/service/${service}: none of the ${body.length} entries is a valid instance`);
  }
  return uniqueIds(valid);
}

/** Sorted by id, each id once: ids used on several nodes are qualified by their node. */
function uniqueIds(found: Array<{ instance: ServiceInstance; node: string | undefined }>): ServiceInstance[] {
  const count = new Map<string, number>();
  for (const { instance } of found) count.set(instance.id, (count.get(instance.id) ?? 0) + 1);
  const out: ServiceInstance[] = [];
  const seen = new Set<string>();
  for (const { instance, node } of found) {
    let value = instance;
    if (count.get(instance.id)! > 1) {
      const parsed = parseInstance({ ...instance, id: nodeQualifiedId(instance.id, node, MAX_INSTANCE_ID_LENGTH) });
      if (!parsed.ok) continue;
      value = parsed.value;
    }
    // The same id on the same node twice is one instance reported twice.
    if (seen.has(value.id)) continue;
    seen.add(value.id);
    out.push(value);
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
