import { ConsulRegistry, type ConsulRegistryOptions } from './consul/index.js';
import { InvalidOptionsError } from './errors.js';
import { LocalRegistry, type LocalRegistryOptions } from './local/index.js';
import { MemoryRegistry, type MemoryRegistryOptions } from './memory/memory-registry.js';
import type { Registry, RegistryLogger } from './types.js';

/** A registry described as data: for config files, child processes and tests. */
export type RegistryConfig =
  | ({ kind: 'local' } & LocalRegistryOptions)
  | ({ kind: 'consul' } & ConsulRegistryOptions)
  | ({ kind: 'memory' } & MemoryRegistryOptions);

export function openRegistry(config: RegistryConfig): Registry {
  if (config === null || typeof config !== 'object') throw new InvalidOptionsError('config', 'must be an object');
  const { kind, ...options } = config;
  switch (kind) {
    case 'local':
      return new LocalRegistry(options as LocalRegistryOptions);
    case 'consul':
      return new ConsulRegistry(options as ConsulRegistryOptions);
    case 'memory':
      return new MemoryRegistry(options as MemoryRegistryOptions);
    default:
      throw new InvalidOptionsError('config.kind', `must be "local", "consul" or "memory", got ${JSON.stringify(kind)}`);
  }
}

export interface RegistryFromEnvOptions {
  env?: NodeJS.ProcessEnv;
  logger?: RegistryLogger;
}

/**
 * The registry a process should use when nobody said otherwise: Consul when `CONSUL_HTTP_ADDR` is
 * set (with `CONSUL_HTTP_TOKEN`, `CONSUL_CACERT`, `CONSUL_HTTP_SSL`), else the local registry in
 * `PEERLB_REGISTRY_DIR` or the per-user default directory. Does no I/O until first used.
 */
export function registryFromEnv(options: RegistryFromEnvOptions = {}): Registry {
  const env = options.env ?? process.env;
  const logger = options.logger;
  if (env.CONSUL_HTTP_ADDR) return new ConsulRegistry({ env, ...(logger ? { logger } : {}) });
  return new LocalRegistry({ env, ...(logger ? { logger } : {}) });
}
