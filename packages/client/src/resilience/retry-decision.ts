import type { FailurePhase } from './failure-class.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** RFC 9110 §9.2.2 idempotent methods. Case-insensitive (undici accepts lower case). */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT.has(method.toUpperCase());
}

/** Status codes worth another peer: the peer failed or refused, and another may not. */
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

export function isRetryableStatus(statusCode: number): boolean {
  return RETRYABLE_STATUS.has(statusCode);
}

export interface RetryQuestion {
  /** `response`: a response arrived with `statusCode`; otherwise the phase from `classifyFailure`. */
  readonly phase: FailurePhase | 'response';
  readonly method: string;
  /** Overrides the method's own idempotency (e.g. a POST the caller declares safe to repeat). */
  readonly idempotent?: boolean;
  /** False for a streamed body already (partly) consumed: such a request is never sent twice. */
  readonly bodyReplayable: boolean;
  /** Attempts made so far (1 after the first). */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** Time left before the call's deadline. */
  readonly timeLeftMs: number;
  readonly statusCode?: number;
}

export type RetryRefusal =
  | 'local'
  | 'attempts'
  | 'deadline'
  | 'body-not-replayable'
  | 'not-idempotent'
  | 'status';

export type RetryDecision =
  | { readonly retry: true }
  | { readonly retry: false; readonly why: RetryRefusal };

const RETRY: RetryDecision = Object.freeze({ retry: true });
const REFUSALS: Readonly<Record<RetryRefusal, RetryDecision>> = Object.freeze({
  local: Object.freeze({ retry: false, why: 'local' }),
  attempts: Object.freeze({ retry: false, why: 'attempts' }),
  deadline: Object.freeze({ retry: false, why: 'deadline' }),
  'body-not-replayable': Object.freeze({ retry: false, why: 'body-not-replayable' }),
  'not-idempotent': Object.freeze({ retry: false, why: 'not-idempotent' }),
  status: Object.freeze({ retry: false, why: 'status' }),
});

/**
 * Whether to make another attempt, on another peer. The budget (`RetryBudget`) is asked
 * separately, last, so a refused retry does not spend it. How long a peer that sent Retry-After
 * stays aside is decided apart from this (`retryAfterMs`), whether or not the call retries.
 *
 * - Connect-phase failures: any method (nothing was sent).
 * - Failures after the request may have reached the peer, and retryable statuses (429, 500,
 *   502, 503, 504): idempotent methods only (or `idempotent: true`). 429 and 503 are not proof
 *   that nothing was processed, for an arbitrary server, so a POST is not repeated on them.
 * - Never: our own aborts and deadline, a non-replayable body, no attempts or no time left.
 */
export function shouldRetry(q: RetryQuestion): RetryDecision {
  if (q.phase === 'local') return REFUSALS.local;
  if (q.phase === 'response' && (q.statusCode === undefined || !RETRYABLE_STATUS.has(q.statusCode))) {
    return REFUSALS.status;
  }
  if (q.attempt >= q.maxAttempts) return REFUSALS.attempts;
  if (!(q.timeLeftMs > 0)) return REFUSALS.deadline;
  if (!q.bodyReplayable) return REFUSALS['body-not-replayable'];
  if (q.phase !== 'connect' && !(q.idempotent ?? isIdempotentMethod(q.method))) return REFUSALS['not-idempotent'];
  return RETRY;
}

