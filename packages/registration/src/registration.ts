import {
  AbortedError,
  backoffDelay,
  sleep,
  type Registry,
  type ServiceInstanceInput,
} from '@peerlb/registry';
import { openDefaultRegistry } from './default-registry.js';
import { HealthCheckFailedError, RegistrationFailedError } from './errors.js';
import { evaluateHealth, type HealthVerdict } from './health.js';
import { FailureReports } from './failure-reports.js';
import { Lifecycle, isLeaving, isLive, type RegistrationState } from './lifecycle.js';
import type { RegistrationEvents } from './events.js';
import type { RegistrationConfig } from './options.js';
import { scopedSignal, withScopedSignal } from './signals.js';
import { TypedEmitter } from './typed-emitter.js';

export type { RegistrationEvents } from './events.js';

type BeatOutcome = 'ok' | 'failed' | 'lost' | 'aborted';

// Retrying these cannot help: a bad instance, refused credentials, an unusable registry directory.
const PERMANENT_CODES = new Set<unknown>([
  'PEERLB_INVALID_OPTIONS',
  'PEERLB_REGISTRY_AUTH',
  'PEERLB_UNSAFE_REGISTRY_DIR',
  'PEERLB_CLOSED',
]);

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** True when `kept` says more than `next`: a real registry error beats the abort that cut the retry short. */
function isBetterError(kept: unknown, next: unknown): boolean {
  return kept !== undefined && codeOf(next) === 'PEERLB_ABORTED' && codeOf(kept) !== 'PEERLB_ABORTED';
}

/** For messages: an abort caused by one of our timeouts says "timed out after ..." rather than "aborted". */
function describeError(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  if (codeOf(err) === 'PEERLB_ABORTED' && cause instanceof Error) return cause.message;
  return asError(err).message;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * One instance's presence in the registry: startup registration with bounded retries, the
 * heartbeat/health loop, re-registration when the registry forgets the instance, deregistration.
 * It owns no server; `registerService` and `startService` build their handles on it.
 */
export class Registration {
  readonly events: TypedEmitter<RegistrationEvents>;
  private readonly lifecycle: Lifecycle;
  private instance: ServiceInstanceInput | undefined;
  private registryRef: Registry | undefined;
  private ownsRegistry = false;
  private loopController: AbortController | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private lastHealthy: boolean | undefined;
  private lostStreak = 0;
  private deregistration: Promise<void> | undefined;
  private finished: Promise<void> | undefined;
  private readonly healthReports = new FailureReports();
  private readonly renewalReports = new FailureReports({ repeatMs: 30_000, minGapMs: 5_000 });
  /** Heartbeats in a row the registry could not record. */
  private renewalFailures = 0;

  constructor(
    readonly config: RegistrationConfig,
    private readonly openRegistry: (logger: RegistrationConfig['logger']) => Promise<Registry> = openDefaultRegistry,
  ) {
    this.events = new TypedEmitter<RegistrationEvents>(config.logger);
    for (const [event, listener] of Object.entries(config.on) as Array<[keyof RegistrationEvents, (...args: unknown[]) => void]>) {
      this.events.on(event, listener as (...args: RegistrationEvents[typeof event]) => void);
    }
    this.lifecycle = new Lifecycle((state, previous) => this.events.emit('state', state, previous));
  }

  get id(): string {
    return this.config.id;
  }

  get state(): RegistrationState {
    return this.lifecycle.state;
  }

  /** The registry in use; defined once `start` has begun. */
  get registry(): Registry | undefined {
    return this.registryRef;
  }

  /**
   * Registers `port`, retrying with backoff and jitter until `startupTimeoutMs`; then sends the
   * first heartbeat and starts the loop. On failure nothing stays registered and the registration
   * is closed.
   */
  async start(port: number, signal?: AbortSignal): Promise<void> {
    const { config } = this;
    this.instance = {
      id: config.id,
      service: config.service,
      address: config.address,
      port,
      tags: config.tags,
      meta: config.meta,
    };
    try {
      if (signal?.aborted) throw new AbortedError(signal.reason);
      this.registryRef = config.registry ?? (await this.openRegistry(config.logger));
      this.ownsRegistry = config.registry === undefined;
    } catch (err) {
      await this.finish();
      throw err;
    }
    this.lifecycle.to('registering');
    const registry = this.registryRef;
    const instance = this.instance;
    const deadline = scopedSignal(signal, config.startupTimeoutMs, 'startup registration');
    let attempts = 0;
    let lastError: unknown;
    let registered = false;
    try {
      while (!deadline.signal.aborted) {
        attempts++;
        try {
          await withScopedSignal(deadline.signal, config.callTimeoutMs, (s) =>
            registry.register(instance, config.check, { signal: s }),
          );
          registered = true;
          break;
        } catch (err) {
          if (!isBetterError(lastError, err)) lastError = err;
          if (PERMANENT_CODES.has(codeOf(err)) || deadline.signal.aborted) break;
          // Nobody can listen for events before the handle exists: say it in the log instead.
          config.logger.warn(`registering ${config.id} failed (attempt ${attempts}), retrying: ${describeError(err)}`);
          try {
            await sleep(backoffDelay(attempts - 1, config.backoff), deadline.signal);
          } catch {
            break;
          }
        }
      }
    } finally {
      deadline.dispose();
    }
    if (!registered || signal?.aborted) {
      // A register call cut short by the deadline may still have reached the registry.
      await this.abandonStartup();
      if (signal?.aborted) throw new AbortedError(signal.reason);
      const permanent = PERMANENT_CODES.has(codeOf(lastError));
      const reason = describeError(lastError);
      throw new RegistrationFailedError(
        config.id,
        attempts,
        permanent
          ? `the ${registry.kind} registry refused instance "${config.id}": ${reason}`
          : `could not register instance "${config.id}" with the ${registry.kind} registry within ${config.startupTimeoutMs} ms (${attempts} attempts): ${reason}`,
        { cause: lastError },
      );
    }
    const controller = new AbortController();
    this.loopController = controller;
    // A shutdown signal while the first health() call runs must not be followed by a passing
    // heartbeat: the beat sees its signal aborted and sends nothing.
    const onStartupAbort = () => controller.abort(signal?.reason);
    if (signal?.aborted) onStartupAbort();
    else signal?.addEventListener('abort', onStartupAbort, { once: true });
    let first: BeatOutcome;
    try {
      first = await this.beat(controller.signal);
    } finally {
      signal?.removeEventListener('abort', onStartupAbort);
    }
    if (signal?.aborted) {
      // Registered, but start-up was called off (SIGTERM, the caller's signal): leave no trace.
      await this.abandonStartup();
      throw new AbortedError(signal.reason);
    }
    this.events.emit('registered', { id: config.id, attempts });
    this.loopDone = this.runLoop(controller.signal, first).catch((err: unknown) => {
      // The loop handles its own errors; this only guards against a bug leaving a rejection unhandled.
      this.events.emit('error', asError(err));
    });
  }

  /** The health endpoint's answer: never healthy while leaving, else the health function's verdict. */
  async endpointHealth(): Promise<HealthVerdict> {
    const state = this.lifecycle.state;
    if (isLeaving(state)) return { ok: false, reason: state };
    return this.askHealth();
  }

  /** Start-up did not end registered: a best-effort, bounded deregistration, then closed. */
  private async abandonStartup(): Promise<void> {
    await this.deregisterWithRetry(Math.min(this.config.deregisterTimeoutMs, 2_000)).catch((err: unknown) => {
      this.config.logger.warn(`could not deregister ${this.config.id} after failed startup: ${asError(err).message}`);
    });
    await this.finish();
  }

  /**
   * The health function's verdict. When it threw, that is said (logged, and an `error` event when
   * someone listens), rate-limited: otherwise the instance is critical and nothing says why.
   */
  private async askHealth(): Promise<HealthVerdict> {
    const verdict = await evaluateHealth(this.config.health, this.config.healthTimeoutMs);
    if (!verdict.ok && verdict.threw !== undefined) {
      const admitted = this.healthReports.admit(verdict.reason);
      if (admitted !== undefined) {
        const held = admitted.heldBack > 0 ? ` (${admitted.heldBack} similar failures not reported since the last report)` : '';
        const error = new HealthCheckFailedError(
          this.config.id,
          `${verdict.reason}; instance ${this.config.id} is reported critical until it passes${held}`,
          { cause: verdict.threw.error },
        );
        this.config.logger.warn(error.message, { instanceId: this.config.id });
        // Without a listener the emitter would log it a second time.
        if (this.events.listenerCount('error') > 0) this.events.emit('error', error);
      }
    }
    return verdict;
  }

  /** Enters `draining` (the health endpoint answers 503). False when already leaving. */
  markDraining(): boolean {
    if (isLeaving(this.lifecycle.state) && this.lifecycle.state !== 'deregistered') return false;
    if (!this.lifecycle.to('draining')) return false;
    this.events.emit('draining');
    return true;
  }

  /** Stops heartbeats and removes the instance from the registry; rejects when the registry cannot be told. */
  deregister(): Promise<void> {
    if (isLive(this.lifecycle.state)) this.lifecycle.to('deregistered');
    this.deregistration ??= (async () => {
      await this.stopLoop();
      if (this.registryRef === undefined || this.instance === undefined) return;
      await this.deregisterWithRetry(this.config.deregisterTimeoutMs);
      this.events.emit('deregistered');
    })();
    // A failed attempt may be tried again by the next call.
    this.deregistration.catch(() => {
      this.deregistration = undefined;
    });
    return this.deregistration;
  }

  /** Like `deregister`, but a failure is emitted as `error` instead of thrown. True when the registry confirmed it. */
  async leave(): Promise<boolean> {
    try {
      await this.deregister();
      return true;
    } catch (err) {
      this.events.emit('error', asError(err));
      return false;
    }
  }

  /** For a crashing process: one bounded deregistration attempt, no events awaited. */
  async crashLeave(budgetMs: number): Promise<void> {
    this.loopController?.abort();
    if (this.registryRef === undefined || this.instance === undefined) return;
    await this.deregisterWithRetry(budgetMs).catch(() => {});
  }

  /** Releases the registry if we opened it and enters `closed`. Idempotent. */
  finish(): Promise<void> {
    this.finished ??= (async () => {
      await this.stopLoop();
      if (this.ownsRegistry && this.registryRef) {
        await this.registryRef.close().catch((err: unknown) => {
          this.config.logger.warn(`closing the registry failed: ${asError(err).message}`);
        });
      }
      this.lifecycle.to('closed');
      this.events.emit('closed');
    })();
    return this.finished;
  }

  private async stopLoop(): Promise<void> {
    this.loopController?.abort();
    await this.loopDone;
  }

  private async runLoop(signal: AbortSignal, first: BeatOutcome): Promise<void> {
    let outcome = first;
    while (!signal.aborted) {
      if (outcome === 'lost') {
        if (!(await this.reregister(signal))) return;
        outcome = await this.beat(signal);
        continue;
      }
      try {
        await sleep(this.config.heartbeatIntervalMs, signal);
      } catch {
        return;
      }
      outcome = await this.beat(signal);
    }
  }

  /** One round: ask the health function, tell the registry. Never throws. */
  private async beat(signal: AbortSignal): Promise<BeatOutcome> {
    const { config } = this;
    const registry = this.registryRef!;
    const verdict = await this.askHealth();
    if (signal.aborted) return 'aborted';
    let outcome: BeatOutcome = 'ok';
    try {
      await withScopedSignal(signal, config.callTimeoutMs, (s) =>
        registry.heartbeat(config.id, {
          status: verdict.ok ? 'passing' : 'critical',
          note: verdict.ok ? 'healthy' : verdict.reason,
          signal: s,
        }),
      );
      this.lostStreak = 0;
      if (this.renewalFailures > 0) {
        config.logger.warn(`instance ${config.id} renews its registration again, after ${this.renewalFailures} failed heartbeat(s)`);
        this.renewalFailures = 0;
      }
    } catch (err) {
      if (signal.aborted) return 'aborted';
      if (codeOf(err) === 'PEERLB_NOT_REGISTERED') {
        this.lostStreak++;
        this.events.emit('lost', asError(err));
        return 'lost';
      }
      this.renewalFailures++;
      this.reportRenewalFailure(asError(err));
      this.events.emit('error', asError(err));
      outcome = 'failed';
    }
    this.applyHealth(verdict);
    return outcome;
  }

  /**
   * Said in the log whether or not anyone listens to `error` (rate-limited): an instance whose
   * heartbeats fail drops out of its callers' view when its check lapses, although it is alive,
   * and the reason (a full or read-only registry disk, an unreachable agent) is only here.
   */
  private reportRenewalFailure(err: Error): void {
    const admitted = this.renewalReports.admit(err.message);
    if (admitted === undefined) return;
    const { config } = this;
    const held = admitted.heldBack > 0 ? `; ${admitted.heldBack} more failure(s) since the last report` : '';
    const lapse =
      config.check.ttlMs !== undefined
        ? `its check lapses ${config.check.ttlMs} ms after the last heartbeat recorded`
        : 'its check lapses when its lease runs out';
    config.logger.warn(
      `instance ${config.id} CANNOT RENEW its registration (${this.renewalFailures} heartbeat(s) failed in a row): ${err.message}; ${lapse}, then callers see it as unhealthy or the registry as degraded${held}`,
      { instanceId: config.id },
    );
  }

  private applyHealth(verdict: HealthVerdict): void {
    if (!this.lifecycle.to(verdict.ok ? 'registered' : 'unhealthy')) return;
    const was = this.lastHealthy;
    this.lastHealthy = verdict.ok;
    if (!verdict.ok && was !== false) this.events.emit('unhealthy', verdict.reason);
    else if (verdict.ok && was === false) this.events.emit('healthy');
  }

  /** Registers again after the registry forgot us; retries until it works or the loop stops. */
  private async reregister(signal: AbortSignal): Promise<boolean> {
    const { config } = this;
    if (!this.lifecycle.to('reregistering')) return false;
    const registry = this.registryRef!;
    const instance = this.instance!;
    for (let attempts = 1; ; attempts++) {
      // Jittered even before the first try: after a registry restart every instance notices at
      // about the same moment, and they should not all come back in the same millisecond.
      try {
        await sleep(backoffDelay(this.lostStreak - 1 + attempts - 1, config.backoff), signal);
      } catch {
        return false;
      }
      try {
        await withScopedSignal(signal, config.callTimeoutMs, (s) => registry.register(instance, config.check, { signal: s }));
        this.events.emit('reregistered', { id: config.id, attempts });
        return true;
      } catch (err) {
        if (signal.aborted) return false;
        this.events.emit('error', asError(err));
      }
    }
  }

  private async deregisterWithRetry(budgetMs: number): Promise<void> {
    const registry = this.registryRef;
    if (registry === undefined) return;
    const deadline = scopedSignal(undefined, budgetMs, 'deregistration');
    let lastError: unknown;
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          await withScopedSignal(deadline.signal, this.config.callTimeoutMs, (s) =>
            registry.deregister(this.config.id, { signal: s }),
          );
          return;
        } catch (err) {
          if (!isBetterError(lastError, err)) lastError = err;
          if (deadline.signal.aborted || PERMANENT_CODES.has(codeOf(err))) throw lastError;
          try {
            await sleep(backoffDelay(attempt, { minMs: 100, maxMs: 1_000 }), deadline.signal);
          } catch {
            throw lastError;
          }
        }
      }
    } finally {
      deadline.dispose();
    }
  }
}
