import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryFromEnv, type Registry, type RegistryLogger } from '@peerlb/registry';

/** Which registry this run uses, and the environment that points every instance at it. */
export interface RegistryEnv {
  readonly kind: 'local' | 'consul';
  /** For people: the directory, or the Consul address (never the token). */
  readonly where: string;
  readonly env: NodeJS.ProcessEnv;
  /** The supervisor's own view of the registry (the live view, the end-of-run check). */
  readonly registry: Registry;
  /** Closes the registry; removes the run's directory (local). */
  cleanup(): Promise<void>;
  /** Removes the run's directory at once, for a supervisor about to exit hard (local). */
  cleanupNow(): void;
}

/**
 * Consul when `CONSUL_HTTP_ADDR` is set; otherwise a fresh local registry directory under the OS
 * temp dir for this run, so no instance left by an earlier run (or another mesh) is ever called.
 */
export async function prepareRegistry(base: NodeJS.ProcessEnv, logger: RegistryLogger): Promise<RegistryEnv> {
  if (base.CONSUL_HTTP_ADDR) {
    const env = { ...base };
    const registry = registryFromEnv({ env, logger });
    return {
      kind: 'consul',
      where: withoutCredentials(base.CONSUL_HTTP_ADDR),
      env,
      registry,
      cleanup: () => registry.close(),
      cleanupNow: () => {},
    };
  }
  const parent = await mkdtemp(join(tmpdir(), 'peerlb-mesh-'));
  const dir = join(parent, 'registry');
  const env: NodeJS.ProcessEnv = { ...base, PEERLB_REGISTRY_DIR: dir };
  delete env.CONSUL_HTTP_ADDR;
  const registry = registryFromEnv({ env, logger });
  return {
    kind: 'local',
    where: dir,
    env,
    registry,
    async cleanup() {
      await registry.close();
      await rm(parent, { recursive: true, force: true });
    },
    cleanupNow() {
      rmSync(parent, { recursive: true, force: true });
    },
  };
}

/** An address as it may be printed: any `user:password@` part removed. */
function withoutCredentials(address: string): string {
  try {
    const url = new URL(address.includes('://') ? address : `http://${address}`);
    url.username = '';
    url.password = '';
    return address.includes('://') ? url.origin : url.host;
  } catch {
    return '(CONSUL_HTTP_ADDR)';
  }
}
