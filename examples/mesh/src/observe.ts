import type { Agent } from 'node:http';
import type { Registry } from '@peerlb/registry';
import { httpJson } from './http-json.js';
import type { InstanceProcess } from './instance-process.js';
import { BACKENDS, type InstanceStats, type ServiceName } from './protocol.js';

export const ALL_SERVICES: readonly ServiceName[] = ['gateway', ...BACKENDS];

export interface InstanceView {
  proc: InstanceProcess;
  stats: InstanceStats | undefined;
  /** Why there are no stats (not ready, exited, did not answer). */
  error: string | undefined;
}

export interface MeshSnapshot {
  at: number;
  instances: InstanceView[];
  /** Ids of the healthy instances the registry lists, per service; undefined if it could not be read. */
  registry: Map<ServiceName, Set<string>> | undefined;
  registryError: string | undefined;
}

/** `GET /admin/stats` of one instance. */
export async function fetchStats(url: string, timeoutMs: number, agent?: Agent): Promise<InstanceStats> {
  const res = await httpJson(`${url}/admin/stats`, { timeoutMs, ...(agent ? { agent } : {}) });
  if (res.status !== 200 || res.json === undefined) throw new Error(`admin stats answered ${res.status}`);
  return res.json as InstanceStats;
}

/** The healthy instance ids the registry lists for every service. */
export async function listRegistry(registry: Registry, timeoutMs: number): Promise<Map<ServiceName, Set<string>>> {
  const entries = await Promise.all(
    ALL_SERVICES.map(async (service) => {
      const list = await registry.list(service, { signal: AbortSignal.timeout(timeoutMs) });
      return [service, new Set(list.map((i) => i.id))] as const;
    }),
  );
  return new Map(entries);
}

/** Polls every running instance and the registry, all at once. */
export async function takeSnapshot(
  procs: readonly InstanceProcess[],
  registry: Registry,
  options: { timeoutMs: number; agent?: Agent },
): Promise<MeshSnapshot> {
  const [instances, reg] = await Promise.all([
    Promise.all(
      procs.map(async (proc): Promise<InstanceView> => {
        if (proc.info === undefined) return { proc, stats: undefined, error: proc.alive ? 'starting' : 'never started' };
        if (!proc.alive) return { proc, stats: undefined, error: 'exited' };
        try {
          return { proc, stats: await fetchStats(proc.info.url, options.timeoutMs, options.agent), error: undefined };
        } catch (err) {
          return { proc, stats: undefined, error: (err as Error).message };
        }
      }),
    ),
    listRegistry(registry, options.timeoutMs).then(
      (map) => ({ map, error: undefined }),
      (err: unknown) => ({ map: undefined, error: (err as Error).message }),
    ),
  ]);
  return { at: Date.now(), instances, registry: reg.map, registryError: reg.error };
}
