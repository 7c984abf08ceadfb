export { LocalRegistry } from './local-registry.js';
export type { LocalRegistryOptions } from './options.js';
