import type { IncomingHttpHeaders } from 'node:http';
import type { Outcome } from '../balancer/index.js';
import { classifyFailure, type FailureClass } from '../resilience/index.js';

/**
 * How one attempt ended, as `Attempt.done` hears it: the load tracker's `Outcome`, plus what the
 * other listeners need: the answer's status and headers (server-reported load, telemetry) and the
 * error it failed with (the breaker's fault rule). One object per attempt.
 */
export type AttemptOutcome = Outcome & {
  /** Status of the answer, when one came (successes too). */
  readonly statusCode?: number;
  /** Response headers, when an answer came. */
  readonly headers?: IncomingHttpHeaders;
  /** What the attempt failed with, when it failed with an error (not a status). */
  readonly error?: unknown;
};

/** A 5xx or 429 counts against the peer (load, breaker, outlier detection) even when it is returned. */
export function isFailureStatus(statusCode: number): boolean {
  return statusCode >= 500 || statusCode === 429;
}

export function statusOutcome(statusCode: number, headers: IncomingHttpHeaders, latencyMs: number): AttemptOutcome {
  return isFailureStatus(statusCode)
    ? { kind: 'failure', reason: 'status', statusCode, headers, latencyMs }
    : { kind: 'success', statusCode, headers, latencyMs };
}

/**
 * The outcome of an attempt that failed with `error`. Failures that are not the peer's doing (our
 * abort, its pool closed because it left, its breaker refused) are recorded as `aborted`, which
 * neither the load metric nor outlier detection holds against the peer.
 */
export function errorOutcome(error: unknown, latencyMs: number, failure: FailureClass = classifyFailure(error)): AttemptOutcome {
  const reason = failure.peerFault ? failure.reason : 'aborted';
  return { kind: 'failure', reason, latencyMs, error };
}

/** How an attempt whose answer was delivered ended with its body: `error` if the body failed. */
export function bodyOutcome(error: Error | null | undefined, headersOutcome: AttemptOutcome): AttemptOutcome {
  return error ? errorOutcome(error, headersOutcome.latencyMs) : headersOutcome;
}
