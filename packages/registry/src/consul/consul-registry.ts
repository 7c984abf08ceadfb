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
import { sleep } from '../backoff.js';
import type { NormalisedCheck } from '../validate.js';
import { runBlockingWatch } from './blocking-watch.js';
import { ConsulApi, ConsulStatusError, type CallControl, type TtlUpdate } from './consul-api.js';
import { goDuration, serviceRegistration, ttlCheckId } from './consul-mapping.js';
import { resolveConsulOptions, type ConsulRegistryOptions, type ResolvedConsulOptions } from './consul-options.js';
import { instancesFromHealthAnswer } from './health-answer.js';
import { OncePerEntry } from './once-per-entry.js';
import { isLoopback, validateConsulMeta } from './registration-limits.js';

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
  private readonly dropped: OncePerEntry;
  /** Things said once per registry object (a key per warning), so a loop cannot flood the log. */
  private readonly warned = new Set<string>();
  readonly #hasToken: boolean;
  /** The agent's node name, once known (undefined: not asked yet; null: cannot be read). */
  #node: string | null | undefined;

  constructor(options: ConsulRegistryOptions = {}) {
    // The token and the TLS settings (which hold the client key) go to the API object only.
    const { token, tls, ...config } = resolveConsulOptions(options);
    this.config = config;
    this.#hasToken = token !== undefined;
    this.dropped = new OncePerEntry(config.logger);
    this.#api = new ConsulApi({ endpoint: config.endpoint, token, tls, maxResponseBytes: config.maxResponseBytes });
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

  /**
   * Registers with the local agent, then waits until the catalog shows the instance: an agent
   * accepts a registration (200) even when it reaches no Consul server, and syncs it later. Until
   * the catalog has it nobody can discover it, so that is not "registered": after
   * `requestTimeoutMs` this rejects with a `RegistryUnavailableError` saying so (the agent keeps
   * the registration and syncs it when it can; registering again is harmless).
   */
  async register(input: ServiceInstanceInput, check: HealthCheckSpec, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    const instance = validateInstanceInput(input);
    validateConsulMeta(instance.meta);
    const normalised = this.clampReap(validateCheckSpec(check));
    this.warnUnreachableCheck(instance, normalised);
    await this.call(options.signal, (c) => this.#api.registerService(serviceRegistration(instance, normalised), c));
    this.ttlOf.set(instance.id, normalised.ttlMs !== undefined);
    if (this.config.confirmRegistration) await this.confirmInCatalog(instance, options.signal);
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
      toInstances: (body) => {
        if (Array.isArray(body) && body.length === 0 && this.#hasToken) void this.explainEmpty(service).catch(() => {});
        return this.toInstances(service, body, filter);
      },
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

  /** Polls the catalog until it holds `instance` on this agent's node. */
  private async confirmInCatalog(instance: ServiceInstance, signal: AbortSignal | undefined): Promise<void> {
    const deadline = performance.now() + this.config.requestTimeoutMs;
    let lastProblem = 'not in the catalog yet';
    for (let pauseMs = 25; ; pauseMs = Math.min(pauseMs * 2, 500)) {
      try {
        if (await this.inCatalog(instance, signal)) return;
        lastProblem = 'not in the catalog yet';
      } catch (err) {
        // Reads fail while the cluster has no leader ("No cluster leader", "No known Consul
        // servers"): the same situation, keep waiting. Anything else is the caller's to see.
        if (!(err instanceof RegistryUnavailableError)) throw err;
        lastProblem = err.message;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new RegistryUnavailableError(
          `consul: the agent at ${this.address} accepted instance "${instance.id}" but the catalog does not show it after ${this.config.requestTimeoutMs} ms (${lastProblem}); it is not discoverable yet, and the agent will sync it once it reaches a Consul server${this.#hasToken ? ' (if the cluster is healthy: this token needs service:read and node:read to see it)' : ''}`,
        );
      }
      await this.call(signal, () => sleep(Math.min(pauseMs, left), signal));
    }
  }

  /**
   * Whether the catalog holds `instance` on this agent's node: the node's own services when the
   * node name is known (a small read, whatever the size of the service), else the service's
   * health entries, any status, matched by id.
   */
  private async inCatalog(instance: ServiceInstance, signal: AbortSignal | undefined): Promise<boolean> {
    const node = await this.agentNode(signal);
    if (node !== null) {
      const ids = await this.call(signal, (c) => this.#api.nodeServiceIds(node, this.config.datacenter, c));
      return ids.has(instance.id);
    }
    const reply = await this.call(signal, (c) => this.#api.healthService({ service: instance.service, ...this.dc(), all: true }, c));
    return (
      Array.isArray(reply.body) &&
      reply.body.some((entry) => (entry as { Service?: { ID?: unknown } } | null)?.Service?.ID === instance.id)
    );
  }

  /** This agent's node name (asked once), or null when the token may not read it: then ids alone are matched. */
  private async agentNode(signal: AbortSignal | undefined): Promise<string | null> {
    if (this.#node === undefined) {
      const name = await this.call(signal, (c) => this.#api.nodeName(c)).catch((err: unknown) => {
        // An agent (or double) without /v1/agent/self: match by id only.
        if (err instanceof ConsulStatusError && err.status === 404) return undefined;
        throw err;
      });
      this.#node = name ?? null;
    }
    return this.#node;
  }

  /** A real agent raises DeregisterCriticalServiceAfter below 1 minute to 1 minute: say so, and send what it will do. */
  private clampReap(check: NormalisedCheck): NormalisedCheck {
    const min = this.config.minDeregisterCriticalAfterMs;
    const asked = check.deregisterCriticalAfterMs;
    if (asked === undefined || asked >= min) return check;
    this.warnOnce(
      'reap-clamp',
      `consul: deregisterCriticalAfterMs ${asked} is below Consul's minimum; raised to ${min} ms (a real agent reaps every 30 s, so removal comes ${min / 1000} to ${min / 1000 + 30} s after the instance turned critical)`,
    );
    return { ...check, deregisterCriticalAfterMs: min };
  }

  /**
   * A real agent runs HTTP checks from its own host: an instance that advertises a loopback
   * address to an agent on another host is polled on that host's loopback and never passes.
   */
  private warnUnreachableCheck(instance: ServiceInstance, check: NormalisedCheck): void {
    if (!check.http || !('path' in check.http.target)) return;
    if (!isLoopback(instance.address) || isLoopback(this.config.endpoint.host)) return;
    this.warnOnce(
      `loopback:${instance.id}`,
      `consul: instance "${instance.id}" advertises the loopback address ${instance.address} but the agent at ${this.address} is not on this host: the agent runs the HTTP check from its own host, so it can never pass, and callers elsewhere cannot reach the instance. Advertise an address the agent can reach.`,
    );
  }

  private warnOnce(key: string, message: string): void {
    if (this.firstTime(key)) this.config.logger.warn(message, { source: 'consul' });
  }

  /** True the first time `key` is seen by this registry object, false ever after. */
  private firstTime(key: string): boolean {
    if (this.warned.has(key)) return false;
    this.warned.add(key);
    return true;
  }

  /**
   * A token without `service:read` gets `200 []` from Consul (filtered, not refused), which looks
   * like "no instances" forever. On a watch's first empty answer for a service, ask what the token
   * is; unless it is a management token (or ACLs are off), say once that it may be filtering.
   * (Consul 1.8 has no header telling filtered answers apart; without a token nothing is asked.)
   */
  private async explainEmpty(service: string): Promise<void> {
    const key = `empty:${service.toLowerCase()}`;
    if (this.closed || !this.firstTime(key)) return;
    const self = await this.call(undefined, (c) => this.#api.tokenSelf(c)).catch(() => undefined);
    if (self === undefined || self.aclsOff || self.management) return;
    this.config.logger.warn(
      `consul: no instance of "${service}" is visible to this ACL token. Consul answers an empty list, not an error, when a token lacks service:read on a service: if "${service}" has instances, check the token's policy.`,
      { source: 'consul', service },
    );
  }

  private async requireService(id: string, signal: AbortSignal | undefined): Promise<void> {
    const known = await this.call(signal, (c) => this.#api.agentHasService(id, c));
    if (!known) throw new NotRegisteredError(id);
  }

  private toInstances(service: string, body: unknown, filter: InstanceFilter | undefined): ServiceInstance[] {
    const instances = instancesFromHealthAnswer(service, body, this.dropped);
    return filter === undefined ? instances : instances.filter((instance) => matchesFilter(instance, filter));
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
