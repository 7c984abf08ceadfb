export { ConsulRegistry } from './consul-registry.js';
export type { ConsulRegistryOptions } from './consul-options.js';
