export { createClient } from './client.js';
export type { Client, ClientOptions, RetryOptions } from './client.js';
export { balancedRequest, closeDefaultClient, getDefaultClient } from './default-client.js';
export { BalancedDispatcher } from './dispatcher/balanced-dispatcher.js';
export type { BalancedDispatcherOptions } from './dispatcher/balanced-dispatcher.js';
export { CALLER_HEADER } from './pipeline/request-options.js';
export type {
  RequestOptions,
  RequestHeaders,
  RequestBody,
  HeaderValue,
  QueryValue,
} from './pipeline/request-options.js';
export type { BalancedResponse, ResponseBody } from './pipeline/request-pipeline.js';
export { NoPeersError, DeadlineError, UpstreamError } from './errors.js';
export type { PeerInfo } from './errors.js';
export type {
  ClientEventMap,
  ClientEventName,
  PeerEvent,
  PeerEjectedEvent,
  BreakerEvent,
  RetryEvent,
  StaleEvent,
  PanicEvent,
} from './events.js';
export type { ClientStats, ServiceStats, PeerStats } from './stats.js';
export type { DiscoveryOptions } from './discovery/index.js';
export { undiciPoolFactory } from './transport/index.js';
export type { PoolOptions, ResolvedPoolOptions, TransportFactory } from './transport/index.js';
export * from './balancer/index.js';
export * from './resilience/index.js';
export { PeerlbError, InvalidOptionsError, ClosedError, AbortedError } from '@peerlb/registry';
export type { Registry, RegistryLogger, ServiceInstance } from '@peerlb/registry';
