export { PeerTransport, undiciPoolFactory, originOf } from './peer-transport.js';
export type { TransportFactory } from './peer-transport.js';
export { resolvePoolOptions } from './pool-options.js';
export type { PeerTlsOptions, PoolOptions, ResolvedPoolOptions } from './pool-options.js';
