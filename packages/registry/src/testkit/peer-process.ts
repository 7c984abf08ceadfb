/**
 * A second OS process for the conformance suite's "two processes see each other" test: it
 * registers one instance, heartbeats it, watches its service and prints each update as a JSON
 * line. SIGTERM deregisters and exits 0.
 *
 * Usage: node peer-process.js '{"config": PeerRegistryConfig, "instance": {...}}'
 */
import { openRegistry } from '../open-registry.js';
import type { PeerRegistryConfig } from './target.js';

interface PeerArgs {
  config: PeerRegistryConfig;
  instance: { id: string; service: string; address: string; port: number };
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '') as PeerArgs;
  const registry = openRegistry(args.config);
  const { instance } = args;
  await registry.register(instance, { ttlMs: 10_000 });
  await registry.heartbeat(instance.id);
  const heartbeat = setInterval(() => {
    registry.heartbeat(instance.id).catch((err: Error) => console.error(`[peer] heartbeat failed: ${err.message}`));
  }, 2_000);
  const watch = registry.watch(instance.service, (update) => {
    if (update.ok) console.log(JSON.stringify({ event: 'update', ids: update.instances.map((i) => i.id) }));
  });
  process.once('SIGTERM', () => {
    clearInterval(heartbeat);
    watch.close();
    registry
      .deregister(instance.id)
      .finally(() => registry.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  });
  console.log(JSON.stringify({ event: 'ready' }));
}

main().catch((err: unknown) => {
  console.error(`[peer] ${(err as Error)?.stack ?? String(err)}`);
  process.exit(1);
});
