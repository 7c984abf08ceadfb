import type { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { ClosedError, InvalidOptionsError, PeerlbError, silentLogger, type RegistryLogger } from '@peerlb/registry';
import { durationOption, numberOption, optionsObject } from '../options.js';
import { classifyFailure } from './failure-class.js';

export type BreakerState = 'closed' | 'open' | 'halfOpen';

export interface BreakerOptions {
  /** Failure percentage in the rolling window that opens the breaker. Default 50. */
  errorThresholdPercentage?: number;
  /** Calls needed in the window before the percentage is trusted. Default 10. */
  volumeThreshold?: number;
  /** How long the breaker stays open before letting one trial through. Default 10 000 ms. */
  resetTimeoutMs?: number;
  /** The rolling window. Default 10 000 ms. */
  rollingCountTimeoutMs?: number;
  /** Slices of the window (one shared timer rotates them for all breakers). Default 10. */
  rollingCountBuckets?: number;
  /**
   * opossum's own per-call timeout, which does not cancel the call and costs a timer per
   * request. Default false: the request's deadline (an AbortSignal) bounds every call instead.
   */
  timeoutMs?: number | false;
  /**
   * Whether a thrown error is the peer's fault (counts towards opening). Default `isPeerFault`:
   * our own aborts and 4xx other than 429 are not.
   */
  isPeerFault?: (error: unknown, signal: AbortSignal | undefined) => boolean;
  /** Where a throwing state listener is reported. Default: silent. */
  logger?: RegistryLogger;
}

/** One attempt, run under the breaker. It gets the signal passed to `run`. */
export type BreakerCall<T> = (signal: AbortSignal | undefined) => Promise<T>;

export interface PeerBreaker {
  readonly peerId: string;
  readonly state: BreakerState | 'shutdown';
  /** Whether `run` would let a call through now (closed, or half-open with its trial free). */
  readonly allowsCall: boolean;
  /**
   * Runs `call` under the breaker. While open (or half-open with its single trial taken), rejects
   * at once with `BreakerOpenError` without calling it; after `shutdown`, with `ClosedError`.
   * The call must settle: pass it a deadline through `signal`.
   */
  run<T>(call: BreakerCall<T>, signal?: AbortSignal): Promise<T>;
  /**
   * The request path's way around `run`: true when a call may run now without the breaker
   * wrapping it (closed, and no opossum `timeoutMs`). The caller then runs it itself and must
   * report its end with `succeeded()` or `failed()`. False: use `run` (or skip the peer).
   */
  admitsDirectCall(): boolean;
  /** A call admitted by `admitsDirectCall` ended well. */
  succeeded(): void;
  /**
   * A call admitted by `admitsDirectCall` failed with `error`. Resolves (never rejects) once the
   * breaker has judged it, so a caller that waits sees the breaker's resulting state.
   */
  failed(error: unknown, signal?: AbortSignal): Promise<void>;
  /** Listens to transitions; returns the unsubscribe function. */
  onStateChange(listener: (state: BreakerState, previous: BreakerState) => void): () => void;
  /** Stops the breaker (timers, listeners). Call when the peer leaves. Idempotent. */
  shutdown(): void;
}

/** The peer's breaker refused the call; nothing was sent. */
export class BreakerOpenError extends PeerlbError {
  readonly peerId: string;

  constructor(peerId: string) {
    super('PEERLB_BREAKER_OPEN', `circuit breaker of peer "${peerId}" is open`);
    this.peerId = peerId;
  }
}

/**
 * Default fault rule: an error counts against the peer unless our own signal aborted the call,
 * it is ours (`classifyFailure` says local, or not the peer's fault), or it carries an HTTP
 * status (`statusCode` or `status`) in 400..499 other than 429 — the peer answered correctly.
 */
export function isPeerFault(error: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted === true) return false;
  const status = statusOf(error);
  if (status !== undefined) return !(status >= 400 && status < 500 && status !== 429);
  return classifyFailure(error).peerFault;
}

function statusOf(error: unknown): number | undefined {
  if (error === null || typeof error !== 'object') return undefined;
  const e = error as { statusCode?: unknown; status?: unknown };
  const status = typeof e.statusCode === 'number' ? e.statusCode : e.status;
  return typeof status === 'number' && Number.isInteger(status) ? status : undefined;
}

/** Our own abort: says nothing about the peer either way. */
function isInconclusive(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || classifyFailure(error).phase === 'local';
}

type Action = (call: BreakerCall<unknown>, signal: AbortSignal | undefined) => Promise<unknown>;
const action: Action = (call, signal) => call(signal);

/** What we use of opossum's `Status` beyond its typings: `increment` is how opossum itself counts. */
interface CountingStatus {
  increment(property: 'fires' | 'successes' | 'failures', latencyMs?: number): void;
}

/**
 * The `rotateBucketController` of ONE breaker: opossum asks it `listenerCount`, `on` and
 * `removeListener`, which on a shared EventEmitter are linear scans over every breaker's listener
 * (O(n^2) to add or remove n peers). A slot holds its one listener; the factory's single interval
 * calls every slot it holds.
 */
class RotationSlot {
  #rotate: (() => void) | undefined;

  constructor(private readonly slots: Set<RotationSlot>) {}

  listenerCount(_event: string, listener?: () => void): number {
    return this.#rotate !== undefined && (listener === undefined || listener === this.#rotate) ? 1 : 0;
  }

  on(_event: string, listener: () => void): this {
    this.#rotate = listener;
    this.slots.add(this);
    return this;
  }

  removeListener(_event: string, listener: () => void): this {
    if (listener === this.#rotate) {
      this.#rotate = undefined;
      this.slots.delete(this);
    }
    return this;
  }

  rotate(): void {
    this.#rotate?.();
  }
}

interface Resolved {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly resetTimeout: number;
  readonly rollingCountTimeout: number;
  readonly rollingCountBuckets: number;
  readonly timeout: number | false;
  readonly isPeerFault: (error: unknown, signal: AbortSignal | undefined) => boolean;
  readonly logger: RegistryLogger;
}

/**
 * Makes one opossum breaker per peer for a client, and keeps their cost off idle peers and off
 * the request path:
 *
 * - A peer's opossum breaker is created on its first call, like its pool: a client that watches
 *   10,000 instances and talks to a few pays for a few.
 * - One unref'd interval rotates every breaker's window (through a `RotationSlot` each: O(1) to
 *   add and remove), no snapshot timers, no percentiles; each breaker gets its own options object,
 *   because opossum keeps and mutates the one it is given. The interval runs only while at least
 *   one breaker exists; `close()` shuts every breaker down.
 *
 * opossum decides every state change (see `PeerBreakerImpl` for how calls reach it).
 */
export class BreakerFactory {
  readonly #options: Resolved;
  readonly #slots = new Set<RotationSlot>();
  readonly #breakers = new Set<PeerBreakerImpl>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options?: BreakerOptions, field = 'breaker') {
    const o = optionsObject(field, options);
    const timeout = o.timeoutMs === undefined || o.timeoutMs === false
      ? false
      : durationOption(`${field}.timeoutMs`, o.timeoutMs, 0);
    const rollingCountTimeout = durationOption(`${field}.rollingCountTimeoutMs`, o.rollingCountTimeoutMs, 10_000);
    const rollingCountBuckets = numberOption(`${field}.rollingCountBuckets`, o.rollingCountBuckets, 10, {
      min: 1,
      integer: true,
    });
    if (rollingCountTimeout / rollingCountBuckets < 1) {
      throw new InvalidOptionsError(`${field}.rollingCountBuckets`, 'each bucket must span at least 1 ms');
    }
    if (o.isPeerFault !== undefined && typeof o.isPeerFault !== 'function') {
      throw new InvalidOptionsError(`${field}.isPeerFault`, 'must be a function (error, signal) => boolean');
    }
    if (o.logger !== undefined && (o.logger === null || typeof o.logger.warn !== 'function')) {
      throw new InvalidOptionsError(`${field}.logger`, 'must have a warn(message) method');
    }
    this.#options = Object.freeze({
      errorThresholdPercentage: numberOption(`${field}.errorThresholdPercentage`, o.errorThresholdPercentage, 50, {
        min: 0,
        exclusiveMin: true,
        max: 100,
      }),
      volumeThreshold: numberOption(`${field}.volumeThreshold`, o.volumeThreshold, 10, { min: 0, integer: true }),
      resetTimeout: durationOption(`${field}.resetTimeoutMs`, o.resetTimeoutMs, 10_000),
      rollingCountTimeout,
      rollingCountBuckets,
      timeout,
      isPeerFault: o.isPeerFault ?? isPeerFault,
      logger: o.logger ?? silentLogger,
    });
  }

  /** A breaker for `peerId` (opossum's is made on its first call). Shut it down when the peer leaves. */
  create(peerId: string): PeerBreaker {
    if (this.#closed) throw new ClosedError('breaker factory');
    return new PeerBreakerImpl(peerId, this);
  }

  /** Peers whose opossum breaker exists (made on a first call, gone at shutdown). */
  get size(): number {
    return this.#breakers.size;
  }

  /** Whether the shared rotation interval is running (only while breakers exist). */
  get rotating(): boolean {
    return this.#timer !== undefined;
  }

  /** Shuts down every breaker and stops the rotation timer. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const breaker of [...this.#breakers]) breaker.shutdown();
    this.#stopRotation();
  }

  /** @internal The opossum breaker of a peer's first call. */
  arm(owner: PeerBreakerImpl, errorFilter: ErrorFilter): CircuitBreaker<Parameters<Action>, unknown> {
    const o = this.#options;
    // A fresh options object per breaker: opossum stores and mutates the one it is given.
    const breaker = new CircuitBreaker(action, {
      name: owner.peerId,
      timeout: o.timeout,
      resetTimeout: o.resetTimeout,
      errorThresholdPercentage: o.errorThresholdPercentage,
      volumeThreshold: o.volumeThreshold,
      rollingCountTimeout: o.rollingCountTimeout,
      rollingCountBuckets: o.rollingCountBuckets,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: new RotationSlot(this.#slots) as unknown as EventEmitter,
      errorFilter,
    });
    this.#breakers.add(owner);
    this.#startRotation();
    return breaker;
  }

  /** @internal */
  get options(): Resolved {
    return this.#options;
  }

  /** @internal */
  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  forget(owner: PeerBreakerImpl): void {
    this.#breakers.delete(owner);
    if (this.#breakers.size === 0) this.#stopRotation();
  }

  #startRotation(): void {
    if (this.#timer !== undefined) return;
    const every = Math.floor(this.#options.rollingCountTimeout / this.#options.rollingCountBuckets);
    this.#timer = setInterval(() => {
      for (const slot of this.#slots) slot.rotate();
    }, every);
    this.#timer.unref();
  }

  #stopRotation(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

type StateListener = (state: BreakerState, previous: BreakerState) => void;
type ErrorFilter = (error: unknown, call?: unknown, signal?: AbortSignal) => boolean;

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
 *   ~10 us of CPU per request under load in the bench). The request pipeline goes further and
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
class PeerBreakerImpl implements PeerBreaker {
  readonly peerId: string;
  readonly #factory: BreakerFactory;
  #breaker: CircuitBreaker<Parameters<Action>, unknown> | undefined;
  #status: CountingStatus | undefined;
  /** opossum's own per-call timeout needs `fire` around every call. */
  readonly #directCalls: boolean;
  #errorFilter: ErrorFilter | undefined;
  #listeners: StateListener[] | undefined;
  #state: BreakerState = 'closed';
  #shutdown = false;

  constructor(peerId: string, factory: BreakerFactory) {
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
