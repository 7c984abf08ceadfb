import type { Agent } from 'node:http';
import { httpJson } from './http-json.js';
import type { InstanceProcess } from './instance-process.js';
import type { Mesh } from './mesh.js';
import { BACKENDS, type BackendName } from './protocol.js';

/**
 * The failures (and the one recovery) the supervisor can inflict on the mesh: the demo's script and
 * the browser view's buttons both go through these, so each is done one way.
 */
export const ACTIONS = ['kill', 'stop', 'slow', 'unhealthy', 'healthy', 'start'] as const;
export type ActionName = (typeof ACTIONS)[number];

export function isActionName(value: unknown): value is ActionName {
  return (ACTIONS as readonly unknown[]).includes(value);
}

export function isBackendName(value: unknown): value is BackendName {
  return (BACKENDS as readonly unknown[]).includes(value);
}

export const DEFAULT_SLOW_MS = 200;
const ADMIN_TIMEOUT_MS = 2_000;

/** SIGKILL: no deregistration, no drain; callers find out by failing, the registry by its TTL. */
export function killInstance(proc: InstanceProcess): boolean {
  return proc.kill('SIGKILL');
}

/** SIGTERM: the instance deregisters, keeps serving for its drain time, then exits. */
export function stopInstance(proc: InstanceProcess): boolean {
  return proc.kill('SIGTERM');
}

/** Adds `ms` of delay to every request the instance serves (0 removes it). */
export async function slowDown(proc: InstanceProcess, ms: number, agent?: Agent): Promise<void> {
  await admin(proc, `/admin/slow?ms=${ms}`, agent);
}

/** Makes the instance's health function fail (or pass again): it leaves (or rejoins) the healthy set. */
export async function setHealthy(proc: InstanceProcess, healthy: boolean, agent?: Agent): Promise<void> {
  await admin(proc, `/admin/health?ok=${healthy}`, agent);
}

/** One more instance of a backend; resolves when it is registered. */
export async function startOneMore(mesh: Mesh, service: BackendName): Promise<InstanceProcess> {
  const proc = mesh.spawn(service);
  await proc.ready;
  return proc;
}

async function admin(proc: InstanceProcess, pathAndQuery: string, agent: Agent | undefined): Promise<void> {
  const url = proc.info?.url;
  if (url === undefined || !proc.alive) throw new Error(`${proc.label} is not running`);
  const res = await httpJson(`${url}${pathAndQuery}`, {
    method: 'POST',
    timeoutMs: ADMIN_TIMEOUT_MS,
    ...(agent ? { agent } : {}),
  });
  if (res.status !== 200) throw new Error(`${proc.label} answered ${res.status} to POST ${pathAndQuery.split('?')[0]}`);
}
