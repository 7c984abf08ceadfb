import type { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import {
  ClosedError,
  durationOption,
  InvalidOptionsError,
  numberOption,
  optionsObject,
  silentLogger,
  type RegistryLogger,
} from '@peerlb/registry';
import { isPeerFault, type BreakerOptions, type PeerBreaker } from './breaker-contract.js';
import { action, PeerBreakerImpl, type Action, type BreakerHost, type ErrorFilter } from './peer-breaker.js';
import { RotationSlot } from './rotation-slot.js';

export { BreakerOpenError } from '../errors.js';
export { isPeerFault } from './breaker-contract.js';
export type { BreakerCall, BreakerOptions, BreakerState, PeerBreaker } from './breaker-contract.js';

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
export class BreakerFactory implements BreakerHost {
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
