export { createClient } from './client.js';
export type { Client, ClientOptions, RetryOptions } from './client.js';
export { balancedRequest, closeDefaultClient, getDefaultClient } from './default-client.js';
export { BalancedDispatcher } from './dispatcher/balanced-dispatcher.js';
export type { BalancedDispatcherOptions } from './dispatcher/balanced-dispatcher.js';
export { CALLER_HEADER } from './call/request-options.js';
export type {
  RequestOptions,
  RequestHeaders,
  RequestBody,
  HeaderValue,
  QueryValue,
} from './call/request-options.js';
export type { BalancedResponse, ResponseBody } from './request/request-call.js';
export { NoPeersError, DeadlineError, UpstreamError, BodyTooLargeError, AttemptTimeoutError } from './errors.js';
export type { NoPeersReason, PeerInfo } from './errors.js';
export type {
  ClientEventMap,
  ClientEventName,
  PeerEvent,
  PeerEjectedEvent,
  BreakerEvent,
  RetryEvent,
  StaleEvent,
  PanicEvent,
  HedgeEvent,
  AttemptEvent,
} from './events.js';
export type { ClientStats, ServiceStats, PeerStats } from './stats.js';
export type { HedgeOptions, LatencyPercentile } from './hedging/hedge-options.js';
export type { HedgeStats } from './hedging/service-hedging.js';
export { TIMEOUT_HEADER, currentDeadline } from '@peerlb/deadline';
export type { Explanation, ExplainOptions, PeerExplanation, ComparedCandidate } from './explain.js';
export type { ExclusionReason, PeerState } from './peers/exclusions.js';
export type { DiscoveryOptions } from './discovery/index.js';
export { undiciPoolFactory } from './transport/index.js';
export type { PeerTlsOptions, PoolOptions, ResolvedPoolOptions, TransportFactory } from './transport/index.js';
export type {
  Balancer,
  LoadMetric,
  LoadReader,
  LoadTracker,
  Outcome,
  PickablePeer,
  PickContext,
  Picker,
  PickResult,
} from './balancer/types.js';
export { leastRequestsLoad, peakEwma } from './balancer/load-metrics.js';
export type { PeakEwmaOptions } from './balancer/load-metrics.js';
export { p2c } from './balancer/p2c.js';
export type { P2cOptions } from './balancer/p2c.js';
export { LOAD_REPORT_HEADER, parseLoadReport } from './balancer/load-report.js';
export type { LoadReport } from './balancer/load-report.js';
export type { LoadReportOptions, PeerLoadReport } from './balancer/server-load.js';
export { leastRequests } from './balancer/least-requests.js';
export { roundRobin } from './balancer/round-robin.js';
export { random } from './balancer/random-balancer.js';
export { consistentHash } from './balancer/consistent-hash.js';
export type { ConsistentHashOptions } from './balancer/consistent-hash.js';
export { seededRandom } from './balancer/random.js';
export { DEFAULT_HEALTHY_PANIC_THRESHOLD } from './balancer/eligible.js';
export { RateLimitedError, BreakerOpenError } from './errors.js';

export type { BreakerOptions, BreakerState } from './resilience/breaker.js';
export type { OutlierDetectionOptions, OutlierEvent } from './resilience/outlier-detector.js';
export type { RetryBudgetOptions } from './resilience/retry-budget.js';
export { PeerlbError, InvalidOptionsError, ClosedError, AbortedError } from '@peerlb/registry';
export type { Registry, RegistryLogger, ServiceInstance } from '@peerlb/registry';
