import { registryFromEnv, type Registry, type RegistryLogger } from '@peerlb/registry';

/**
 * The registry used when none is given: `registryFromEnv()` (Consul when `CONSUL_HTTP_ADDR` is
 * set, else the local registry). Opened at start, not at import, so importing this package reads
 * no environment and opens nothing.
 */
export async function openDefaultRegistry(logger: RegistryLogger): Promise<Registry> {
  return registryFromEnv({ logger });
}
