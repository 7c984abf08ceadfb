import type { RegistryLogger } from '@peerlb/registry';
import { classifyFailure } from './failure-class.js';

/** What a peer's breaker promises the call core, and the rule that says whose fault an error is. */

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
export function isInconclusive(error: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || classifyFailure(error).phase === 'local';
}
