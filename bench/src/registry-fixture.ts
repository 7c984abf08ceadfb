import { LocalRegistry, silentLogger } from '@peerlb/registry';
import type { Target } from './upstreams.js';

const TTL_MS = 30_000;

/**
 * Registers plain upstreams in a local registry directory on their behalf (TTL check, heartbeats
 * from here), so `balancedRequest()` and the naive client find them the way services are found.
 */
export async function registerTargets(
  dir: string,
  service: string,
  targets: readonly Target[],
): Promise<{ close(): Promise<void> }> {
  const registry = new LocalRegistry({ dir, logger: silentLogger });
  for (const t of targets) {
    await registry.register({ id: t.id, service, address: '127.0.0.1', port: t.port }, { ttlMs: TTL_MS });
    await registry.heartbeat(t.id);
  }
  const timer = setInterval(() => {
    for (const t of targets) registry.heartbeat(t.id).catch(() => {});
  }, TTL_MS / 3);
  timer.unref();
  return {
    async close() {
      clearInterval(timer);
      for (const t of targets) await registry.deregister(t.id).catch(() => {});
      await registry.close();
    },
  };
}
