import { startHttpCheckLoop, httpCheckUrl, type HttpCheckLoop } from '../checks/http-check.js';
import { ClosedError, InvalidOptionsError, NotRegisteredError, throwIfAborted } from '../errors.js';
import { consoleLogger } from '../logger.js';
import type {
  CallOptions,
  CheckStatus,
  HealthCheckSpec,
  HeartbeatOptions,
  ListOptions,
  Registry,
  RegistryLogger,
  ServiceInstance,
  ServiceInstanceInput,
  WatchHandle,
  WatchListener,
  WatchOptions,
} from '../types.js';
import {
  acceptInstances,
  isValidServiceName,
  parseInstance,
  validateCheckSpec,
  validateFilter,
  validateInstanceId,
  validateInstanceInput,
  validateServiceName,
  type NormalisedCheck,
} from '../validate.js';
import { WatchEmitter } from '../watch-emitter.js';

export interface MemoryRegistryOptions {
  logger?: RegistryLogger;
  /**
   * Fixed entries (for tests and static lists), always healthy. Validated like any backend data:
   * an invalid entry is dropped and reported, never served.
   */
  instances?: readonly unknown[];
}

interface CheckState {
  status: CheckStatus;
  since: number;
}

interface Registration {
  instance: ServiceInstance;
  check: NormalisedCheck;
  http?: CheckState;
  ttl?: CheckState & { expiresAt: number };
  httpLoop?: HttpCheckLoop;
  ttlTimer?: NodeJS.Timeout;
  reapTimer?: NodeJS.Timeout;
}

/**
 * An in-process registry with the same health semantics as the others: checks start critical,
 * HTTP checks are polled, TTLs lapse, critical instances are reaped after
 * `deregisterCriticalAfterMs`. It cannot be shared across processes.
 */
export class MemoryRegistry implements Registry {
  readonly kind = 'memory';
  private readonly logger: RegistryLogger;
  private readonly registrations = new Map<string, Registration>();
  private staticEntries: unknown[];
  /** Fixed entries already validated, by the object given (see `parsedStatic`). */
  private readonly parsedEntries = new WeakMap<object, ServiceInstance>();
  private readonly emitters = new Map<WatchEmitter, { service: string; filter: ListOptions['filter'] }>();
  private closed = false;

  constructor(options: MemoryRegistryOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
    if (options.instances !== undefined && !Array.isArray(options.instances)) {
      throw new InvalidOptionsError('instances', 'must be an array');
    }
    this.logger = options.logger ?? consoleLogger;
    this.staticEntries = [...(options.instances ?? [])];
  }

  /**
   * Adds a fixed, always-healthy entry (validated when first read, like backend data; the object
   * is read once, so change an entry by `reset()` and adding it again, not by mutating it).
   */
  addStatic(entry: unknown): void {
    this.staticEntries.push(entry);
    this.notifyAll();
  }

  /** Forgets every registration and fixed entry, as a restarted registry would. Watches stay open. */
  reset(): void {
    for (const reg of this.registrations.values()) this.stopTimers(reg);
    this.registrations.clear();
    this.staticEntries = [];
    this.notifyAll();
  }

  async register(input: ServiceInstanceInput, spec: HealthCheckSpec, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    throwIfAborted(options.signal);
    const instance = validateInstanceInput(input);
    const check = validateCheckSpec(spec);
    const now = Date.now();
    const previous = this.registrations.get(instance.id);
    if (previous) this.stopTimers(previous);
    // Like Consul, re-registering keeps the status of checks that still exist.
    const reg: Registration = { instance, check };
    if (check.http) reg.http = previous?.http ?? { status: 'critical', since: now };
    if (check.ttlMs !== undefined) {
      reg.ttl = previous?.ttl ?? { status: 'critical', since: now, expiresAt: now };
    }
    this.registrations.set(instance.id, reg);
    if (check.http) {
      const url = httpCheckUrl(check.http.target, instance.address, instance.port);
      reg.httpLoop = startHttpCheckLoop({
        url,
        intervalMs: check.http.intervalMs,
        timeoutMs: check.http.timeoutMs,
        onResult: (status) => this.setStatus(reg, 'http', status),
      });
    }
    if (reg.ttl && reg.ttl.status === 'passing') this.armTtl(reg);
    this.armReaper(reg);
    this.notify(instance.service);
  }

  async deregister(id: string, options: CallOptions = {}): Promise<void> {
    this.assertOpen();
    throwIfAborted(options.signal);
    validateInstanceId(id);
    const reg = this.registrations.get(id);
    if (!reg) return;
    this.stopTimers(reg);
    this.registrations.delete(id);
    this.notify(reg.instance.service);
  }

  async heartbeat(id: string, options: HeartbeatOptions = {}): Promise<void> {
    this.assertOpen();
    throwIfAborted(options.signal);
    validateInstanceId(id);
    const reg = this.registrations.get(id);
    if (!reg) throw new NotRegisteredError(id);
    if (!reg.ttl) return;
    // Extend the lease before the status change is announced, so watchers see it as live.
    reg.ttl.expiresAt = Date.now() + reg.check.ttlMs!;
    this.armTtl(reg);
    this.setStatus(reg, 'ttl', options.status ?? 'passing');
  }

  async list(service: string, options: ListOptions = {}): Promise<ServiceInstance[]> {
    this.assertOpen();
    throwIfAborted(options.signal);
    validateServiceName(service);
    return this.healthy(service, validateFilter(options.filter));
  }

  async services(options: CallOptions = {}): Promise<string[]> {
    this.assertOpen();
    throwIfAborted(options.signal);
    const names = new Set<string>();
    for (const entry of this.staticEntries) {
      const service = (entry as { service?: unknown } | null)?.service;
      if (typeof service === 'string' && isValidServiceName(service)) names.add(service);
    }
    for (const reg of this.registrations.values()) names.add(reg.instance.service);
    return [...names].sort();
  }

  watch(service: string, listener: WatchListener, options: WatchOptions = {}): WatchHandle {
    this.assertOpen();
    validateServiceName(service);
    if (typeof listener !== 'function') throw new InvalidOptionsError('listener', 'must be a function');
    const filter = validateFilter(options.filter);
    const emitter: WatchEmitter = new WatchEmitter(listener, this.logger, () => this.emitters.delete(emitter));
    this.emitters.set(emitter, { service, filter });
    // Deliver the first snapshot asynchronously, as every other adapter does.
    queueMicrotask(() => emitter.instances(this.healthy(service, filter)));
    return emitter.handle();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const reg of this.registrations.values()) this.stopTimers(reg);
    for (const emitter of [...this.emitters.keys()]) emitter.close();
  }

  private healthy(service: string, filter: ListOptions['filter']): ServiceInstance[] {
    const raws: unknown[] = [];
    for (const entry of this.staticEntries) {
      if (entry !== null && typeof entry === 'object' && (entry as { service?: unknown }).service === service) {
        raws.push(this.parsedStatic(entry));
      }
    }
    for (const reg of this.registrations.values()) {
      if (reg.instance.service === service && this.isPassing(reg)) raws.push(reg.instance);
    }
    return acceptInstances(raws, 'memory', this.logger, filter);
  }

  /**
   * A fixed entry is read (validated) once: every change re-lists the service, and re-checking
   * 10,000 unchanged entries each time was most of a one-instance update. An invalid entry stays
   * raw, so it is dropped and reported on every read, as backend garbage is.
   */
  private parsedStatic(entry: object): unknown {
    const known = this.parsedEntries.get(entry);
    if (known !== undefined) return known;
    const result = parseInstance(entry);
    if (!result.ok) return entry;
    this.parsedEntries.set(entry, result.value);
    return result.value;
  }

  private isPassing(reg: Registration): boolean {
    if (reg.http && reg.http.status !== 'passing') return false;
    if (reg.ttl && (reg.ttl.status !== 'passing' || reg.ttl.expiresAt <= Date.now())) return false;
    return true;
  }

  private setStatus(reg: Registration, which: 'http' | 'ttl', status: CheckStatus): void {
    if (this.registrations.get(reg.instance.id) !== reg) return;
    const state = reg[which]!;
    if (state.status === status) return;
    state.status = status;
    state.since = Date.now();
    this.armReaper(reg);
    this.notify(reg.instance.service);
  }

  private armTtl(reg: Registration): void {
    if (reg.ttlTimer) clearTimeout(reg.ttlTimer);
    const ttl = reg.ttl!;
    reg.ttlTimer = setTimeout(() => {
      reg.ttlTimer = undefined;
      this.setStatus(reg, 'ttl', 'critical');
    }, Math.max(0, ttl.expiresAt - Date.now()));
    reg.ttlTimer.unref();
  }

  /** Schedules removal once the instance has been critical for `deregisterCriticalAfterMs`. */
  private armReaper(reg: Registration): void {
    if (reg.reapTimer) clearTimeout(reg.reapTimer);
    reg.reapTimer = undefined;
    const after = reg.check.deregisterCriticalAfterMs;
    if (after === undefined) return;
    const criticalSince = this.criticalSince(reg);
    if (criticalSince === undefined) return;
    reg.reapTimer = setTimeout(() => {
      if (this.registrations.get(reg.instance.id) !== reg) return;
      if (this.criticalSince(reg) === undefined) return;
      this.stopTimers(reg);
      this.registrations.delete(reg.instance.id);
      this.notify(reg.instance.service);
    }, Math.max(0, criticalSince + after - Date.now()));
    reg.reapTimer.unref();
  }

  private criticalSince(reg: Registration): number | undefined {
    const since: number[] = [];
    if (reg.http?.status === 'critical') since.push(reg.http.since);
    if (reg.ttl?.status === 'critical') since.push(reg.ttl.since);
    return since.length ? Math.min(...since) : undefined;
  }

  private stopTimers(reg: Registration): void {
    reg.httpLoop?.stop();
    if (reg.ttlTimer) clearTimeout(reg.ttlTimer);
    if (reg.reapTimer) clearTimeout(reg.reapTimer);
  }

  private notify(service: string): void {
    for (const [emitter, w] of this.emitters) {
      if (w.service === service) emitter.instances(this.healthy(service, w.filter));
    }
  }

  private notifyAll(): void {
    for (const [emitter, w] of this.emitters) emitter.instances(this.healthy(w.service, w.filter));
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('MemoryRegistry');
  }
}
