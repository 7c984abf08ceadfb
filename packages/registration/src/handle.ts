import type { Server } from 'node:http';
import { ClosedError, type Registry } from '@peerlb/registry';
import type { RegistrationState } from './lifecycle.js';
import type { Registration, RegistrationEvents } from './registration.js';
import type { Serving, ServingStats } from './serving/serving-middleware.js';

type Listener<K extends keyof RegistrationEvents> = (...args: RegistrationEvents[K]) => void;

/** What `registerService` returns: the instance's identity, state and the way out. */
export interface ServiceHandle {
  /** `<service>-<nanoid>` unless given. */
  readonly id: string;
  readonly service: string;
  /** The address registered (what callers dial). */
  readonly address: string;
  readonly port: number;
  readonly state: RegistrationState;
  /** The registry the instance is registered in. */
  readonly registry: Registry;
  on<K extends keyof RegistrationEvents>(event: K, listener: Listener<K>): this;
  once<K extends keyof RegistrationEvents>(event: K, listener: Listener<K>): this;
  off<K extends keyof RegistrationEvents>(event: K, listener: Listener<K>): this;
  /** Stops heartbeats and removes the instance from the registry (retried up to `deregisterTimeoutMs`); rejects if the registry cannot be told. A server owned by `startService` keeps serving, its health endpoint answering 503. */
  deregister(): Promise<void>;
  /** Deregisters (best effort), stops every loop and, for `startService`, drains and closes the server. Idempotent; never exits the process. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** What `startService` returns: a handle plus the server it listens and the URL it serves. */
export interface StartedService extends ServiceHandle {
  readonly server: Server;
  /** `http://<address>:<port>` (https for an https server). */
  readonly url: string;
  /** The serving steps' counters (e.g. `deadline.expired`: requests answered 504 with no time left). */
  stats(): ServingStats;
  /**
   * The load this instance reports on its answers (event-loop utilization 0..1 over the report's
   * window, requests in flight), or undefined with `serving: { loadReport: false }`.
   */
  load(): { utilization: number; inFlight: number } | undefined;
}

export class RegistrationHandle implements ServiceHandle {
  private closing: Promise<void> | undefined;
  private readonly detachSignal: () => void;

  constructor(
    protected readonly registration: Registration,
    readonly port: number,
    private readonly closeImpl: () => Promise<void>,
    signal: AbortSignal | undefined,
  ) {
    // Like server.listen({ signal }): an abort after startup closes the instance.
    const onAbort = () => void this.close();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.detachSignal = () => signal?.removeEventListener('abort', onAbort);
  }

  get id(): string {
    return this.registration.id;
  }

  get service(): string {
    return this.registration.config.service;
  }

  get address(): string {
    return this.registration.config.address;
  }

  get state(): RegistrationState {
    return this.registration.state;
  }

  get registry(): Registry {
    return this.registration.registry!;
  }

  on<K extends keyof RegistrationEvents>(event: K, listener: Listener<K>): this {
    this.registration.events.on(event, listener);
    return this;
  }

  once<K extends keyof RegistrationEvents>(event: K, listener: Listener<K>): this {
    this.registration.events.once(event, listener);
    return this;
  }

  off<K extends keyof RegistrationEvents>(event: K, listener: Listener<K>): this {
    this.registration.events.off(event, listener);
    return this;
  }

  deregister(): Promise<void> {
    if (this.registration.state === 'closed') return Promise.reject(new ClosedError(`instance ${this.id}`));
    return this.registration.deregister();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.detachSignal();
      await this.closeImpl();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export class StartedHandle extends RegistrationHandle implements StartedService {
  constructor(
    registration: Registration,
    port: number,
    closeImpl: () => Promise<void>,
    signal: AbortSignal | undefined,
    readonly server: Server,
    readonly url: string,
    private readonly serving: Serving,
  ) {
    super(registration, port, closeImpl, signal);
  }

  stats(): ServingStats {
    return this.serving.stats();
  }

  load(): { utilization: number; inFlight: number } | undefined {
    const reporter = this.serving.loadReporter;
    if (reporter === undefined) return undefined;
    // Rebuilt at most every refreshMs, as for an answer.
    reporter.header();
    return { utilization: reporter.utilization, inFlight: reporter.inFlight };
  }
}
