import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { ClosedError, InvalidOptionsError, PeerlbError, silentLogger, type RegistryLogger } from '@peerlb/registry';
import { numberOption, optionsObject } from '../balancer/option-checks.js';
import { classifyFailure } from './retry.js';

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
 * Makes one opossum breaker per peer for a client, sharing what opossum allows to share: ONE
 * `rotateBucketController` (an EventEmitter the factory ticks with a single unref'd interval,
 * instead of an interval per breaker), no snapshot timers, no percentiles. Each breaker gets its
 * own options object, because opossum keeps and mutates the one it is given. The interval runs
 * only while at least one breaker is alive; `close()` shuts every breaker down.
 *
 * A half-open breaker that sees our own abort learns nothing, but opossum would count a filtered
 * error as a success and close: in half-open such an error counts as a failure instead, so the
 * breaker re-opens and tries again after `resetTimeoutMs` (the conservative side).
 */
export class BreakerFactory {
  readonly #options: Resolved;
  readonly #rotation = new EventEmitter();
  readonly #breakers = new Set<PeerBreakerImpl>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options?: BreakerOptions, field = 'breaker') {
    const o = optionsObject(field, options);
    const timeout = o.timeoutMs === undefined || o.timeoutMs === false
      ? false
      : numberOption(`${field}.timeoutMs`, o.timeoutMs, 0, { min: 0, exclusiveMin: true });
    const rollingCountTimeout = numberOption(`${field}.rollingCountTimeoutMs`, o.rollingCountTimeoutMs, 10_000, {
      min: 0,
      exclusiveMin: true,
    });
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
      resetTimeout: numberOption(`${field}.resetTimeoutMs`, o.resetTimeoutMs, 10_000, { min: 0, exclusiveMin: true }),
      rollingCountTimeout,
      rollingCountBuckets,
      timeout,
      isPeerFault: o.isPeerFault ?? isPeerFault,
      logger: o.logger ?? silentLogger,
    });
    // One listener per breaker: the default limit of 10 would warn at the 11th peer.
    this.#rotation.setMaxListeners(0);
  }

  /** A new breaker for `peerId`. Shut it down (or close the factory) when the peer leaves. */
  create(peerId: string): PeerBreaker {
    if (this.#closed) throw new ClosedError('breaker factory');
    const breaker = new PeerBreakerImpl(peerId, this.#options, this.#rotation, (b) => this.#forget(b));
    this.#breakers.add(breaker);
    this.#startRotation();
    return breaker;
  }

  /** Breakers alive. */
  get size(): number {
    return this.#breakers.size;
  }

  /** Whether the shared rotation interval is running (only while breakers are alive). */
  get rotating(): boolean {
    return this.#timer !== undefined;
  }

  /** Shuts down every breaker and stops the rotation timer. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const breaker of [...this.#breakers]) breaker.shutdown();
    this.#stopRotation();
  }

  #forget(breaker: PeerBreakerImpl): void {
    this.#breakers.delete(breaker);
    if (this.#breakers.size === 0) this.#stopRotation();
  }

  #startRotation(): void {
    if (this.#timer !== undefined) return;
    const every = Math.floor(this.#options.rollingCountTimeout / this.#options.rollingCountBuckets);
    this.#timer = setInterval(() => this.#rotation.emit('rotate'), every);
    this.#timer.unref();
  }

  #stopRotation(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

type StateListener = (state: BreakerState, previous: BreakerState) => void;

class PeerBreakerImpl implements PeerBreaker {
  readonly peerId: string;
  readonly #breaker: CircuitBreaker<Parameters<Action>, unknown>;
  readonly #listeners = new Set<StateListener>();
  readonly #logger: RegistryLogger;
  readonly #onShutdown: (breaker: PeerBreakerImpl) => void;
  #state: BreakerState = 'closed';
  #shutdown = false;

  constructor(
    peerId: string,
    options: Resolved,
    rotation: EventEmitter,
    onShutdown: (breaker: PeerBreakerImpl) => void,
  ) {
    this.peerId = peerId;
    this.#logger = options.logger;
    this.#onShutdown = onShutdown;
    const isFault = options.isPeerFault;
    // opossum calls errorFilter(error, ...fireArgs): here (error, call, signal). True = not a failure.
    // In half-open, opossum closes on any success, filtered errors included: an inconclusive one
    // (the trial's, or a call from before that ends now) must not close it, so it counts as a failure.
    const errorFilter = (error: unknown, _call?: unknown, signal?: AbortSignal): boolean => {
      if (isFault(error, signal)) return false;
      return !(this.#breaker.halfOpen && isInconclusive(error, signal));
    };
    // A fresh object per breaker: opossum stores and mutates the options it is given.
    this.#breaker = new CircuitBreaker(action, {
      name: peerId,
      timeout: options.timeout,
      resetTimeout: options.resetTimeout,
      errorThresholdPercentage: options.errorThresholdPercentage,
      volumeThreshold: options.volumeThreshold,
      rollingCountTimeout: options.rollingCountTimeout,
      rollingCountBuckets: options.rollingCountBuckets,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: rotation,
      errorFilter,
    });
    this.#breaker.on('open', () => this.#transition('open'));
    this.#breaker.on('halfOpen', () => this.#transition('halfOpen'));
    this.#breaker.on('close', () => this.#transition('closed'));
  }

  get state(): BreakerState | 'shutdown' {
    return this.#shutdown ? 'shutdown' : this.#state;
  }

  get allowsCall(): boolean {
    return !this.#shutdown && (this.#breaker.closed || this.#breaker.pendingClose);
  }

  run<T>(call: BreakerCall<T>, signal?: AbortSignal): Promise<T> {
    if (this.#shutdown) return Promise.reject(new ClosedError(`circuit breaker of peer "${this.peerId}"`));
    // The same test opossum makes, done first so a refusal is our typed error, not opossum's.
    if (!this.allowsCall) return Promise.reject(new BreakerOpenError(this.peerId));
    return this.#breaker.fire(call, signal) as Promise<T>;
  }

  onStateChange(listener: StateListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    this.#listeners.clear();
    this.#breaker.shutdown();
    this.#onShutdown(this);
  }

  #transition(next: BreakerState): void {
    const previous = this.#state;
    if (next === previous || this.#shutdown) return;
    this.#state = next;
    for (const listener of this.#listeners) {
      try {
        listener(next, previous);
      } catch (err) {
        this.#logger.warn(`breaker state listener threw: ${(err as Error)?.message ?? String(err)}`, {
          peerId: this.peerId,
        });
      }
    }
  }
}
