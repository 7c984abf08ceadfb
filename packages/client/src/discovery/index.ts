export { ServiceWatch } from './service-watch.js';
export type { DiscoveryRules, DiscoverySink, DiscoveryStatus } from './service-watch.js';
export { resolveDiscoveryOptions } from './options.js';
export type { DiscoveryOptions } from './options.js';
