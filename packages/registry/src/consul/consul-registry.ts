import { AbortedError, ClosedError, InvalidOptionsError, NotRegisteredError, RegistryUnavailableError } from '../errors.js';
import type {
  CallOptions,
  CheckStatus,
  HealthCheckSpec,
  HeartbeatOptions,
  InstanceFilter,
  ListOptions,
  Registry,
  ServiceInstance,
  ServiceInstanceInput,
  WatchHandle,
  WatchListener,
  WatchOptions,
} from '../types.js';
import {
  acceptInstances,
  isValidServiceName,
  matchesFilter,
  validateCheckSpec,
  validateFilter,
  validateInstanceId,
  validateInstanceInput,
  validateServiceName,
} from '../validate.js';
import { WatchEmitter } from '../watch-emitter.js';
import { runBlockingWatch } from './blocking-watch.js';
import { ConsulApi, ConsulStatusError, type CallControl, type TtlUpdate } from './consul-api.js';
import { goDuration, instanceFromHealthEntry, serviceRegistration, ttlCheckId } from './consul-mapping.js';
import { resolveConsulOptions, type ConsulRegistryOptions, type ResolvedConsulOptions } from './consul-options.js';

const TTL_UPDATES: Record<CheckStatus, TtlUpdate> = { passing: 'pass', warning: 'warn', critical: 'fail' };
// How Consul answers a TTL update for a check it does not have: 404 "Unknown check ID" on current
// agents, 500 "... does not have associated TTL" on older ones.
const UNKNOWN_CHECK = /does not have associated TTL|unknown check/i;
// How Consul answers deregistering a service it does not have: 404 on current agents, 200 on 1.8
// without ACLs, 500 "Unknown service ..." on 1.8 with ACLs. Already gone is what we wanted.
const UNKNOWN_SERVICE = /unknown service/i;

/**
 * The production registry: a Consul agent's HTTP API through the `consul` package.
 *
 * Heartbeats: an instance registered with a TTL check is renewed with
 * `PUT /v1/agent/check/pass|warn|fail/service:<id>:ttl`. An instance with only an HTTP check has
 * nothing to renew (its status comes from the agent polling it), so its heartbeat only verifies
 * that the agent still knows the service; either way a forgotten instance (deregistered, reaped,
 * agent restarted) makes `heartbeat` throw `NotRegisteredError`, which is how the owner learns to
 * register again.
 */
export class ConsulRegistry implements Registry {
  readonly kind = 'consul';
  readonly #api: ConsulApi;
  private readonly config: Omit<ResolvedConsulOptions, 'token' | 'tls'>;
  private readonly lifetime = new AbortController();
  private readonly watches = new Set<WatchEmitter>();
  /** Instance id -> whether this object registered it with a TTL check. */
  private readonly ttlOf = new Map<string, boolean>();
  private closed = false;

  constructor(options: ConsulRegistryOptions = {}) {
    // The token and the TLS settings (which hold the client key) go to the API object only.
    const { token, tls, ...config } = resolveConsulOptions(options);
    this.config = config;
    this.#api = new ConsulApi({ endpoint: config.endpoint, token, tls });
    if (!tls.verify && config.endpoint.secure) {
      config.logger.warn(
        `consul: TLS certificate verification is off (tlsVerify: false or CONSUL_HTTP_SSL_VERIFY=false): anything that answers at ${config.endpoint.origin} is trusted as the agent`,
        { source: 'consul' },
      );
    }
  }

  /** `scheme://host:port` of the agent this registry talks to. */
  get address(): string {
    return this.config.endpoint.origin;
  }

  async register(input: ServiceInstanceInput, check: HealthCheckSpec, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    const instance = validateInstanceInput(input);
    const normalised = validateCheckSpec(check);
    await this.call(options.signal, (c) => this.#api.registerService(serviceRegistration(instance, normalised), c));
    this.ttlOf.set(instance.id, normalised.ttlMs !== undefined);
  }

  async deregister(id: string, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    validateInstanceId(id);
    try {
      await this.call(options.signal, (c) => this.#api.deregisterService(id, c));
    } catch (err) {
      if (!isUnknownService(err)) throw err;
    }
    this.ttlOf.delete(id);
  }

  async heartbeat(id: string, options: HeartbeatOptions = {}): Promise<void> {
    this.assertOpen();
    validateInstanceId(id);
    const status = options.status ?? 'passing';
    if (!Object.hasOwn(TTL_UPDATES, status)) {
      throw new InvalidOptionsError('status', `must be passing, warning or critical, got ${JSON.stringify(status)}`);
    }
    if (options.note !== undefined && typeof options.note !== 'string') {
      throw new InvalidOptionsError('note', 'must be a string');
    }
    const hasTtl = this.ttlOf.get(id);
    if (hasTtl === false) return this.requireService(id, options.signal);
    try {
      await this.call(options.signal, (c) => this.#api.updateTtlCheck(ttlCheckId(id), TTL_UPDATES[status], options.note, c));
    } catch (err) {
      if (!isUnknownCheck(err)) throw err;
      // Registered elsewhere (another process, an earlier registry object) with an HTTP check only?
      if (hasTtl === undefined) return this.requireService(id, options.signal);
      throw new NotRegisteredError(id);
    }
  }

  async list(service: string, options: ListOptions = {}): Promise<ServiceInstance[]> {
    this.assertOpen();
    validateServiceName(service);
    const filter = validateFilter(options.filter);
    const reply = await this.call(options.signal, (c) =>
      this.#api.healthService({ service, ...this.dc() }, c),
    );
    return this.toInstances(service, reply.body, filter);
  }

  /** `GET /v1/catalog/services`: every service the catalog knows, names that are not valid here left out. */
  async services(options: CallOptions = {}): Promise<string[]> {
    this.assertOpen();
    const body = await this.call(options.signal, (c) => this.#api.catalogServices(this.dc(), c));
    return Object.keys(body).filter(isValidServiceName).sort();
  }

  watch(service: string, listener: WatchListener, options: WatchOptions = {}): WatchHandle {
    this.assertOpen();
    validateServiceName(service);
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', 'must be a function');
    const filter = validateFilter(options.filter);
    const stop = new AbortController();
    const emitter: WatchEmitter = new WatchEmitter(listener, this.config.logger, () => {
      // Aborts the in-flight blocking query at once: nobody waits out its `wait`.
      stop.abort();
      this.watches.delete(emitter);
    });
    this.watches.add(emitter);
    const { waitMs, requestTimeoutMs } = this.config;
    // Consul may hold a blocking query up to wait + wait/16 before answering.
    const blockingTimeoutMs = waitMs + Math.ceil(waitMs / 16) + requestTimeoutMs;
    void runBlockingWatch({
      label: `consul watch of "${service}"`,
      query: (index, signal) =>
        this.#api.healthService(
          { service, ...this.dc(), ...(index === undefined ? {} : { index: index.toString(), wait: goDuration(waitMs) }) },
          { signals: [signal], timeoutMs: index === undefined ? requestTimeoutMs : blockingTimeoutMs },
        ),
      toInstances: (body) => this.toInstances(service, body, filter),
      emitter,
      minIntervalMs: this.config.minWatchIntervalMs,
      backoff: this.config.backoff,
      logger: this.config.logger,
      signal: stop.signal,
      connectionEpoch: () => this.#api.idleConnectionCloses,
    }).catch((err: unknown) => {
      // The loop handles its own errors; reaching this is a bug, so say so rather than go silent.
      this.config.logger.warn(`consul watch of "${service}" stopped unexpectedly: ${(err as Error)?.message ?? String(err)}`);
    });
    return emitter.handle();
  }

  /** Stops every watch and in-flight call; later calls reject with `ClosedError`. Registrations stay. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const emitter of [...this.watches]) emitter.close();
    this.lifetime.abort(new ClosedError('ConsulRegistry'));
    this.#api.close();
  }

  private async requireService(id: string, signal: AbortSignal | undefined): Promise<void> {
    const known = await this.call(signal, (c) => this.#api.agentHasService(id, c));
    if (!known) throw new NotRegisteredError(id);
  }

  private toInstances(service: string, body: unknown, filter: InstanceFilter | undefined): ServiceInstance[] {
    if (!Array.isArray(body)) {
      throw new RegistryUnavailableError(`consul GET /v1/health/service/${service}: expected a JSON array`);
    }
    const raws: unknown[] = [];
    for (const entry of body) {
      const raw = instanceFromHealthEntry(entry);
      const name = (raw as { service?: unknown } | null)?.service;
      // Consul matches service names case-insensitively; anything else is not what we asked for.
      if (typeof name === 'string' && name.toLowerCase() !== service.toLowerCase()) {
        this.config.logger.warn(`dropped instance of service ${JSON.stringify(name)} from a consul read of "${service}"`, {
          source: 'consul',
        });
        continue;
      }
      raws.push(raw);
    }
    const valid = acceptInstances(raws, 'consul', this.config.logger);
    // Entries, none of them usable: a garbled answer, not news that the service is gone. As an
    // error it leaves watchers serving what they had, rather than an empty list.
    if (body.length > 0 && valid.length === 0) {
      throw new RegistryUnavailableError(
        `consul GET /v1/health/service/${service}: none of the ${body.length} entries is a valid instance`,
      );
    }
    return filter === undefined ? valid : valid.filter((instance) => matchesFilter(instance, filter));
  }

  private dc(): { datacenter?: string } {
    return this.config.datacenter === undefined ? {} : { datacenter: this.config.datacenter };
  }

  /** One API call under the caller's signal and this registry's lifetime; closing turns aborts into ClosedError. */
  private async call<T>(signal: AbortSignal | undefined, run: (control: CallControl) => Promise<T>): Promise<T> {
    this.assertOpen();
    try {
      return await run({ signals: [this.lifetime.signal, signal], timeoutMs: this.config.requestTimeoutMs });
    } catch (err) {
      if (err instanceof AbortedError && this.lifetime.signal.aborted) throw new ClosedError('ConsulRegistry');
      throw err;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('ConsulRegistry');
  }
}

function isUnknownService(err: unknown): boolean {
  if (!(err instanceof ConsulStatusError)) return false;
  return err.status === 404 || (err.status === 500 && UNKNOWN_SERVICE.test(err.detail));
}

function isUnknownCheck(err: unknown): boolean {
  if (!(err instanceof ConsulStatusError)) return false;
  return err.status === 404 || ((err.status === 500 || err.status === 400) && UNKNOWN_CHECK.test(err.detail));
}
