import CircuitBreaker from 'opossum';
import { ClosedError, type RegistryLogger } from '@peerlb/registry';
import { BreakerOpenError } from '../errors.js';
import { isInconclusive, type BreakerCall, type BreakerState, type PeerBreaker } from './breaker-contract.js';

export type Action = (call: BreakerCall<unknown>, signal: AbortSignal | undefined) => Promise<unknown>;
export const action: Action = (call, signal) => call(signal);


/**
 * What we use of opossum's `Status` beyond its typings: `increment` is how opossum's own 'fire',
 * 'success' and 'failure' handlers count. opossum has no public way to count an outcome without
 * running the call through `fire()`, whose promise chain, timestamps and events cost ~10 us of
 * CPU per request in the bench (more than the rest of the request path); so a closed breaker's
 * success is counted here, and everything else (failures, half-open, state changes) goes through
 * opossum's public API. Tested in resilience-breaker.test.ts: a breaker fed this way opens,
 * half-opens and closes exactly as opossum decides.
 */
interface CountingStatus {
  increment(property: 'fires' | 'successes' | 'failures', latencyMs?: number): void;
}

/** What a peer's breaker needs from the factory that made it. */
export interface BreakerHost {
  readonly options: {
    readonly timeout: number | false;
    readonly isPeerFault: (error: unknown, signal: AbortSignal | undefined) => boolean;
    readonly logger: RegistryLogger;
  };
  /** The opossum breaker of the peer's first call. */
  arm(owner: PeerBreakerImpl, errorFilter: ErrorFilter): CircuitBreaker<Parameters<Action>, unknown>;
  /** The peer's breaker shut down. */
  forget(owner: PeerBreakerImpl): void;
}

type StateListener = (state: BreakerState, previous: BreakerState) => void;
export type ErrorFilter = (error: unknown, call?: unknown, signal?: AbortSignal) => boolean;

function rejectWith(error: unknown): BreakerCall<never> {
  return () => Promise.reject(error);
}

const DONE: Promise<void> = Promise.resolve();

function noop(): void {}

/**
 * One peer's breaker: opossum's state machine and rolling window, reached two ways.
 *
 * - While closed (nearly every call), the call runs directly and its outcome is handed to opossum
 *   when it ends: a success is counted in opossum's window (`fires` + `successes`, what its
 *   'fire'/'success' handlers do), a failure goes through `fire()` with an already-failed action,
 *   so opossum's own error filter, threshold and volume rules decide whether to open, and the
 *   caller sees the error only after opossum has decided. `fire()` around every call cost more
 *   than the rest of the request path (a promise chain, two timestamps and two events per call,
 *   ~10 us of CPU per request under load in the bench). The call loop goes further and
 *   runs the call itself (`admitsDirectCall`, then `succeeded`/`failed`): no promise at all.
 *   One difference follows: a call is counted in the window when it ends, not when it starts,
 *   so the error rate is over finished calls (calls still in flight do not dilute it).
 * - Half-open (the single trial) and with opossum's own `timeoutMs`, calls go through `fire()`.
 *
 * A call that started closed and ends after the breaker left `closed` is settled as opossum
 * would settle it: counted, a success closes a half-open breaker, a failure re-opens it.
 *
 * A half-open breaker that sees our own abort learns nothing, but opossum would count a filtered
 * error as a success and close: in half-open such an error counts as a failure instead, so the
 * breaker re-opens and tries again after `resetTimeoutMs` (the conservative side).
 */
export class PeerBreakerImpl implements PeerBreaker {
  readonly peerId: string;
  readonly #factory: BreakerHost;
  #breaker: CircuitBreaker<Parameters<Action>, unknown> | undefined;
  #status: CountingStatus | undefined;
  /** opossum's own per-call timeout needs `fire` around every call. */
  readonly #directCalls: boolean;
  #errorFilter: ErrorFilter | undefined;
  #listeners: StateListener[] | undefined;
  #state: BreakerState = 'closed';
  #shutdown = false;

  constructor(peerId: string, factory: BreakerHost) {
    this.peerId = peerId;
    this.#factory = factory;
    this.#directCalls = factory.options.timeout === false;
  }

  get state(): BreakerState | 'shutdown' {
    return this.#shutdown ? 'shutdown' : this.#state;
  }

  get allowsCall(): boolean {
    const breaker = this.#breaker;
    return !this.#shutdown && (breaker === undefined || breaker.closed || breaker.pendingClose);
  }

  run<T>(call: BreakerCall<T>, signal?: AbortSignal): Promise<T> {
    if (this.#shutdown) return Promise.reject(new ClosedError(`circuit breaker of peer "${this.peerId}"`));
    if (this.admitsDirectCall()) {
      return call(signal).then(
        (value) => {
          this.succeeded();
          return value;
        },
        (error: unknown) => this.failed(error, signal).then(() => Promise.reject(error)),
      );
    }
    const breaker = this.#breaker!;
    // The same test opossum makes, done first so a refusal is our typed error, not opossum's.
    if (!(breaker.closed || breaker.pendingClose)) return Promise.reject(new BreakerOpenError(this.peerId));
    return breaker.fire(call, signal) as Promise<T>;
  }

  admitsDirectCall(): boolean {
    if (this.#shutdown) return false;
    const breaker = this.#breaker ?? this.#arm();
    return breaker.closed && this.#directCalls;
  }

  onStateChange(listener: StateListener): () => void {
    (this.#listeners ??= []).push(listener);
    return () => {
      const listeners = this.#listeners;
      const i = listeners?.indexOf(listener) ?? -1;
      if (i >= 0) listeners!.splice(i, 1);
    };
  }

  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    this.#listeners = undefined;
    if (this.#breaker !== undefined) {
      this.#breaker.shutdown();
      this.#factory.forget(this);
    }
  }

  #arm(): CircuitBreaker<Parameters<Action>, unknown> {
    const isFault = this.#factory.options.isPeerFault;
    // opossum calls errorFilter(error, ...fireArgs): here (error, call, signal). True = not a failure.
    this.#errorFilter = (error, _call, signal) => {
      if (isFault(error, signal)) return false;
      return !(this.#breaker?.halfOpen === true && isInconclusive(error, signal));
    };
    const breaker = this.#factory.arm(this, this.#errorFilter);
    this.#breaker = breaker;
    this.#status = breaker.status as unknown as CountingStatus;
    breaker.on('open', () => this.#transition('open'));
    breaker.on('halfOpen', () => this.#transition('halfOpen'));
    breaker.on('close', () => this.#transition('closed'));
    return breaker;
  }

  succeeded(): void {
    if (this.#shutdown || this.#breaker === undefined) return;
    const status = this.#status!;
    status.increment('fires');
    status.increment('successes');
    if (this.#breaker!.halfOpen) this.#breaker!.close();
  }

  failed(error: unknown, signal?: AbortSignal): Promise<void> {
    const breaker = this.#breaker;
    if (this.#shutdown || breaker === undefined) return DONE;
    if (breaker.closed) {
      // opossum judges it (filter, threshold, volume); settles once it has.
      return (breaker.fire(rejectWith(error), signal) as Promise<unknown>).then(noop, noop);
    }
    const status = this.#status!;
    status.increment('fires');
    if (this.#errorFilter!(error, undefined, signal)) {
      status.increment('successes');
      if (breaker.halfOpen) breaker.close();
    } else {
      status.increment('failures');
      if (breaker.halfOpen) breaker.open();
    }
    return DONE;
  }

  #transition(next: BreakerState): void {
    const previous = this.#state;
    if (next === previous || this.#shutdown) return;
    this.#state = next;
    const listeners = this.#listeners;
    if (listeners === undefined) return;
    for (const listener of [...listeners]) {
      try {
        listener(next, previous);
      } catch (err) {
        this.#factory.options.logger.warn(`breaker state listener threw: ${(err as Error)?.message ?? String(err)}`, {
          peerId: this.peerId,
        });
      }
    }
  }
}
