import {
  ClosedError,
  consoleLogger,
  booleanOption,
  durationOption,
  InvalidOptionsError,
  limitOption,
  validateServiceName,
  type Registry,
  type RegistryLogger,
  type TelemetryOptions,
} from '@peerlb/registry';
import { instrumentation } from '@peerlb/registry/otel';
import {
  p2c,
  peakEwma,
  validateLoadMetric,
  validatePanicThreshold,
  ServerLoadBoard,
  type Balancer,
  type LoadMetric,
  type LoadReportOptions,
} from './balancer/index.js';
import {
  BreakerFactory,
  CallerRateLimiter,
  RateLimitOptionsError,
  OutlierDetector,
  RetryBudget,
  type BreakerOptions,
  type CallerRateLimitOptions,
  type OutlierDetectionOptions,
  type RetryBudgetOptions,
} from './resilience/index.js';
import { resolveDiscoveryOptions, type DiscoveryOptions } from './discovery/index.js';
import { BalancedDispatcher, type BalancedDispatcherOptions } from './dispatcher/balanced-dispatcher.js';
import { ClientEvents, type ClientEventMap, type ClientEventName } from './events.js';
import { ServicePeers, type ServiceContext } from './peers/service-peers.js';
import type { CallContext, HeaderStep } from './call/context.js';
import { DeadlineQueue } from './call/deadlines.js';
import { DEFAULT_DEADLINE_ALLOWANCE_MS, deadlineHeaderStep } from './call/inherited-deadline.js';
import { resolveHedgeOptions, type HedgeOptions, type HedgePolicy } from './hedging/hedge-options.js';
import { validateCaller, type RequestOptions } from './call/request-options.js';
import { requestCall, type BalancedResponse } from './request/request-call.js';
import { serviceStats, type ClientStats, type ServiceStats } from './stats.js';
import { explainService, type Explanation, type ExplainOptions } from './explain.js';
import { CLIENT_SCOPE, ClientTelemetry, clientVersion } from './telemetry/client-telemetry.js';
import { resolvePoolOptions, undiciPoolFactory, type PoolOptions, type TransportFactory } from './transport/index.js';

export interface RetryOptions {
  /** Attempts per call, the first included (default 3; 1 disables retries). */
  maxAttempts?: number;
  /** Retries allowed as a share of recent calls, plus a floor (default `{ ratio: 0.2, minPerSec: 10 }`); `false`: no budget. */
  budget?: RetryBudgetOptions | false;
  /** Longest a peer's `Retry-After` keeps it out of the picker (default 30 000 ms). */
  maxRetryAfterMs?: number;
}

export interface ClientOptions {
  /** Where instances are discovered. The client watches it; it does not close it unless `closeRegistry`. */
  registry: Registry;
  /** How a peer is chosen (default `p2c()` over peak-EWMA load). */
  balancer?: Balancer;
  /** How peers' load is tracked (default: the balancer's own metric, else `peakEwma()`). */
  loadMetric?: LoadMetric;
  /**
   * Read the load peers report on their answers (`endpoint-load-metrics`, ORCA) and let the
   * default balancer use it (default on); `false` ignores reports. See `LoadReportOptions`.
   */
  loadReports?: LoadReportOptions | false;
  /** One circuit breaker per peer (default on, see `BreakerOptions`); `false` disables. */
  breaker?: BreakerOptions | false;
  /** Outlier ejection on consecutive failures (default on); `false` disables. */
  outlier?: OutlierDetectionOptions | false;
  /** Below this share of healthy peers, all peers are used again (default 0.5; 0 disables panic mode). */
  healthyPanicThreshold?: number;
  /** Retries on another peer (default on); `false`: one attempt per call. */
  retry?: RetryOptions | false;
  /** A token bucket per caller (default off). */
  rateLimit?: CallerRateLimitOptions | false;
  /** Default deadline of a call, response body included (default 30 000 ms). */
  timeoutMs?: number;
  /**
   * Longest one attempt waits for its response headers (default: no limit but the call's
   * deadline). A peer that exceeds it counts as failed (breaker, outlier ejection) and an
   * idempotent call is retried on another peer: a hung peer costs one attempt, not the call.
   */
  attemptTimeoutMs?: number;
  /** Largest request body a call may send, in bytes (default: no limit). See `BodyTooLargeError`. */
  maxRequestBodyBytes?: number;
  /** Largest response body a call accepts, in bytes (default: no limit). See `BodyTooLargeError`. */
  maxResponseBodyBytes?: number;
  /**
   * Requests in flight to one peer (until their response body ends) beyond which the peer is not
   * picked (default: no limit). When every peer is at it, calls fail at once with `NoPeersError`.
   */
  maxConcurrentPerPeer?: number;
  /** Staleness and empty-answer rules for registry data. */
  discovery?: DiscoveryOptions;
  /** Connection pool of each peer. */
  pool?: PoolOptions;
  /** A leaving peer's pool drains this long before it is destroyed (default 10 000 ms). */
  retireGraceMs?: number;
  /** Builds each peer's pool (default: an undici `Pool`). */
  transportFactory?: TransportFactory;
  /** Uniform random source in [0, 1) for pickers (default `Math.random`). */
  random?: () => number;
  /** Monotonic clock in ms (default `performance.now`). */
  clock?: () => number;
  /** Default caller identity: rate-limit key and `x-peerlb-caller` header when a call names none. */
  caller?: string;
  /** Where warnings go (default: console). */
  logger?: RegistryLogger;
  /** Close the registry with the client (default false). */
  closeRegistry?: boolean;
  /**
   * Hedged requests (default off): a call that may be repeated and has not answered after
   * `delayMs` (or a percentile of recent latency, `'p95'`) gets one more attempt on another peer;
   * the first answer wins. Hedges share the retry budget. A call's own `hedge` overrides this.
   */
  hedge?: HedgeOptions | false;
  /**
   * Send each attempt's time left in `x-peerlb-timeout`, and let calls made while handling a
   * request (a peerlb serving side) inherit what is left of its deadline (default true).
   */
  propagateDeadline?: boolean;
  /**
   * Kept back from an inherited deadline for the answer's way back, and from the time left sent to
   * the next hop for the request's way there (default 10 ms).
   */
  deadlineAllowanceMs?: number;
  /**
   * OpenTelemetry metrics and traces. Default on when `@opentelemetry/api` is installed and a
   * tracer or meter provider was registered before the client is built; `{ tracerProvider,
   * meterProvider }` to report elsewhere; `false` off.
   */
  telemetry?: boolean | TelemetryOptions;
}

export interface Client {
  /** Sends one request to a peer of `options.service`. Resolves with the response, whatever its status. */
  request(options: RequestOptions): Promise<BalancedResponse>;
  /**
   * An undici `Dispatcher` going through this client. With `service`, every request goes to it;
   * without, the URL's host names the service (`http://users/path`).
   */
  dispatcher(service?: string, options?: BalancedDispatcherOptions): BalancedDispatcher;
  /** A snapshot of every service and peer the client knows. */
  stats(): ClientStats;
  /**
   * Why this peer? Every peer of `service` with its load and exclusions, and dry-run picks on the
   * live state: the candidates compared and the share each peer would get now. Starts watching
   * `service` if this client never called it.
   */
  explain(service: string, options?: ExplainOptions): Explanation;
  on<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): Client;
  once<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): Client;
  off<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): Client;
  /** Stops watches, timers and breakers; pools drain (up to `retireGraceMs`) and close. Idempotent. */
  close(): Promise<void>;
  readonly closed: boolean;
}

/** Builds a client. Every option is validated here; an invalid one throws `InvalidOptionsError` naming it. */
export function createClient(options: ClientOptions): Client {
  return new BalancingClient(options);
}

function isRegistry(value: unknown): value is Registry {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as Registry).watch === 'function' &&
    typeof (value as Registry).list === 'function' &&
    typeof (value as Registry).close === 'function'
  );
}

/** The per-caller limiter; its options error is re-thrown as this package's `InvalidOptionsError`. */
function callerRateLimiter(options: CallerRateLimitOptions, field: string): CallerRateLimiter {
  try {
    return new CallerRateLimiter(options, field);
  } catch (err) {
    if (err instanceof RateLimitOptionsError) throw new InvalidOptionsError(err.field, err.reason);
    throw err;
  }
}

function optionalFunction<F>(value: unknown, field: string, fallback: F): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw new InvalidOptionsError(field, 'must be a function');
  return value as F;
}

function optionalObject(value: unknown, field: string): void {
  if (value !== undefined && value !== false && (value === null || typeof value !== 'object')) {
    throw new InvalidOptionsError(field, 'must be an object or false');
  }
}

class BalancingClient implements Client, CallContext {
  readonly limiter: CallerRateLimiter | undefined;
  readonly budget: RetryBudget | undefined;
  readonly maxAttempts: number;
  readonly maxRetryAfterMs: number;
  readonly timeoutMs: number;
  readonly attemptTimeoutMs: number;
  readonly headerSteps: readonly HeaderStep[];
  readonly hedge: HedgePolicy | undefined;
  readonly propagateDeadline: boolean;
  readonly deadlineAllowanceMs: number;
  readonly maxRequestBodyBytes: number;
  readonly maxResponseBodyBytes: number;
  readonly defaultCaller: string | undefined;
  readonly random: () => number;
  readonly clock: () => number;
  readonly events: ClientEvents;
  readonly deadlines: DeadlineQueue;
  /** Undefined when there is nothing to report to (see `ClientOptions.telemetry`). */
  readonly telemetry: ClientTelemetry | undefined;
  private readonly serviceContext: ServiceContext;
  private readonly services = new Map<string, ServicePeers>();
  private readonly registry: Registry;
  private readonly closeRegistry: boolean;
  private closing: Promise<void> | undefined;

  constructor(options: ClientOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
    if (!isRegistry(options.registry)) {
      throw new InvalidOptionsError('registry', 'must be a Registry (watch, list, close), e.g. registryFromEnv()');
    }
    this.registry = options.registry;
    const logger = options.logger ?? consoleLogger;
    if (logger === null || typeof logger !== 'object' || typeof logger.warn !== 'function') {
      throw new InvalidOptionsError('logger', 'must have a warn(message, details?) method');
    }
    const balancer = options.balancer ?? p2c();
    if (balancer === null || typeof balancer !== 'object' || typeof balancer.build !== 'function') {
      throw new InvalidOptionsError('balancer', 'must be a Balancer ({ name, build }), e.g. p2c()');
    }
    const metric: LoadMetric =
      options.loadMetric !== undefined
        ? validateLoadMetric('loadMetric', options.loadMetric)
        : (balancer.metric ?? peakEwma());
    optionalObject(options.loadReports, 'loadReports');
    const loadReports = options.loadReports === false ? undefined : new ServerLoadBoard(options.loadReports);
    optionalObject(options.breaker, 'breaker');
    const breakers = options.breaker === false ? undefined : new BreakerFactory(options.breaker, 'breaker');
    optionalObject(options.outlier, 'outlier');
    const outlier = options.outlier === false ? false : (options.outlier ?? {});
    // Validate now: services build their detectors later, when first called.
    if (outlier !== false) new OutlierDetector(outlier, 'outlier');
    const panicThreshold = validatePanicThreshold('healthyPanicThreshold', options.healthyPanicThreshold);

    optionalObject(options.retry, 'retry');
    const retry = options.retry === false ? { maxAttempts: 1, budget: false as const } : (options.retry ?? {});
    const maxAttempts = retry.maxAttempts ?? 3;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1 || maxAttempts > 10) {
      throw new InvalidOptionsError('retry.maxAttempts', 'must be an integer in 1..10');
    }
    this.maxAttempts = maxAttempts;
    optionalObject(retry.budget, 'retry.budget');
    this.budget = retry.budget === false ? undefined : new RetryBudget(retry.budget, 'retry.budget');
    this.maxRetryAfterMs = durationOption('retry.maxRetryAfterMs', retry.maxRetryAfterMs, 30_000);

    if (options.rateLimit !== undefined && options.rateLimit !== false) {
      this.limiter = callerRateLimiter(options.rateLimit, 'rateLimit');
    }
    this.timeoutMs = durationOption('timeoutMs', options.timeoutMs, 30_000);
    this.attemptTimeoutMs = durationOption('attemptTimeoutMs', options.attemptTimeoutMs, Infinity);
    this.maxRequestBodyBytes = limitOption('maxRequestBodyBytes', options.maxRequestBodyBytes, 0);
    this.maxResponseBodyBytes = limitOption('maxResponseBodyBytes', options.maxResponseBodyBytes, 0);
    this.defaultCaller = options.caller === undefined ? undefined : validateCaller(options.caller, 'caller');
    this.random = optionalFunction(options.random, 'random', Math.random);
    this.clock = optionalFunction(options.clock, 'clock', () => performance.now());
    if (options.closeRegistry !== undefined && typeof options.closeRegistry !== 'boolean') {
      throw new InvalidOptionsError('closeRegistry', 'must be a boolean');
    }
    this.closeRegistry = options.closeRegistry ?? false;
    this.hedge = resolveHedgeOptions(options.hedge, 'hedge');
    this.propagateDeadline = booleanOption('propagateDeadline', options.propagateDeadline, true);
    this.deadlineAllowanceMs = durationOption('deadlineAllowanceMs', options.deadlineAllowanceMs, DEFAULT_DEADLINE_ALLOWANCE_MS, {
      allowZero: true,
    });
    this.headerSteps = this.propagateDeadline ? [deadlineHeaderStep(this.deadlineAllowanceMs)] : [];
    const otel = instrumentation(CLIENT_SCOPE, clientVersion(), options.telemetry, 'telemetry');
    this.telemetry = otel === undefined ? undefined : new ClientTelemetry(otel, () => this.services.values(), this.clock);
    this.events = new ClientEvents(logger);
    this.deadlines = new DeadlineQueue((err) =>
      logger.warn(`deadline handling threw: ${(err as Error)?.message ?? String(err)}`),
    );
    this.serviceContext = Object.freeze({
      registry: this.registry,
      balancer,
      metric,
      loadReports,
      breakers,
      outlier,
      panicThreshold,
      transportFactory: optionalFunction(options.transportFactory, 'transportFactory', undiciPoolFactory),
      poolOptions: resolvePoolOptions(options.pool, 'pool'),
      retireGraceMs: durationOption('retireGraceMs', options.retireGraceMs, 10_000),
      maxConcurrentPerPeer: limitOption('maxConcurrentPerPeer', options.maxConcurrentPerPeer, 1),
      discovery: resolveDiscoveryOptions(options.discovery, 'discovery'),
      events: this.events,
      logger,
      clock: this.clock,
    });
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** The live state of a service, watched from the first call on and kept while the client lives. */
  service(name: string): ServicePeers {
    const known = this.services.get(name);
    if (known !== undefined) return known;
    if (this.closing) throw new ClosedError('client');
    validateServiceName(name, 'service');
    const svc = new ServicePeers(name, this.serviceContext);
    this.services.set(name, svc);
    svc.start();
    return svc;
  }

  request(options: RequestOptions): Promise<BalancedResponse> {
    if (this.closing) return Promise.reject(new ClosedError('client'));
    return requestCall(this, options);
  }

  dispatcher(service?: string, options?: BalancedDispatcherOptions): BalancedDispatcher {
    if (this.closing) throw new ClosedError('client');
    if (service !== undefined) validateServiceName(service, 'service');
    return new BalancedDispatcher(this, service, options);
  }

  stats(): ClientStats {
    const now = this.clock();
    const services: Record<string, ServiceStats> = {};
    for (const [name, svc] of this.services) services[name] = serviceStats(svc, now);
    return { closed: this.closed, services };
  }

  explain(service: string, options?: ExplainOptions): Explanation {
    return explainService(this.service(service), this.clock(), this.random, options);
  }

  on<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): Client {
    this.events.on(event, listener);
    return this;
  }

  once<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): Client {
    this.events.once(event, listener);
    return this;
  }

  off<K extends ClientEventName>(event: K, listener: (...args: ClientEventMap[K]) => void): Client {
    this.events.off(event, listener);
    return this;
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const closing = [...this.services.values()].map((svc) => svc.close());
    this.serviceContext.breakers?.close();
    this.telemetry?.close();
    // Calls still in flight keep their deadlines; timers that serve none go now.
    this.deadlines.close();
    await Promise.all(closing);
    this.events.removeAll();
    if (this.closeRegistry) await this.registry.close();
  }
}
