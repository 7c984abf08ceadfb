import { numberOption, optionsObject } from '../balancer/option-checks.js';

/**
 * Where an attempt failed:
 * - `connect`: no byte of the request was sent (refused, unreachable, DNS, connect timeout, TLS
 *   handshake, a pool already closed, a breaker that refused): safe to retry any method elsewhere.
 * - `sent`: the request may have reached the peer (reset, socket closed, headers/body timeout,
 *   a malformed response): retry only what is idempotent.
 * - `local`: it ended on our side for a reason another peer would not fix (our own abort or
 *   deadline, a bad argument to undici): never retried.
 */
export type FailurePhase = 'connect' | 'sent' | 'local';

/** The `reason` of a failure `Outcome`. `local` failures map to `aborted`, which no tracker holds against a peer. */
export type FailureReason = 'connect' | 'reset' | 'timeout' | 'aborted';

export interface FailureClass {
  readonly phase: FailurePhase;
  readonly reason: FailureReason;
  /** Whether it should count against the peer (breaker, outlier ejection). */
  readonly peerFault: boolean;
  /** The error code the class was read from (the first found along `cause`), if any. */
  readonly code: string | undefined;
}

type Rule = Omit<FailureClass, 'code'>;

const CONNECT: Rule = { phase: 'connect', reason: 'connect', peerFault: true };
const NOT_SENT_OURS: Rule = { phase: 'connect', reason: 'connect', peerFault: false };
const RESET: Rule = { phase: 'sent', reason: 'reset', peerFault: true };
const RESET_OURS: Rule = { phase: 'sent', reason: 'reset', peerFault: false };
const TIMEOUT: Rule = { phase: 'sent', reason: 'timeout', peerFault: true };
const LOCAL: Rule = { phase: 'local', reason: 'aborted', peerFault: false };

/** Error codes, as undici 7 and Node's net/dns/tls report them. */
const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  // Nothing sent: the TCP/TLS connection never came up.
  ['ECONNREFUSED', CONNECT],
  ['ENOTFOUND', CONNECT],
  ['EAI_AGAIN', CONNECT],
  ['EAI_FAIL', CONNECT],
  ['EAI_NONAME', CONNECT],
  ['EHOSTUNREACH', CONNECT],
  ['EHOSTDOWN', CONNECT],
  ['ENETUNREACH', CONNECT],
  ['ENETDOWN', CONNECT],
  ['EADDRNOTAVAIL', CONNECT],
  ['UND_ERR_CONNECT_TIMEOUT', CONNECT],
  ['EPROTO', CONNECT],
  ['CERT_HAS_EXPIRED', CONNECT],
  ['DEPTH_ZERO_SELF_SIGNED_CERT', CONNECT],
  ['SELF_SIGNED_CERT_IN_CHAIN', CONNECT],
  ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', CONNECT],
  ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', CONNECT],
  // Nothing sent, and not the peer's doing: its pool was closed (it left) or its breaker refused.
  ['UND_ERR_CLOSED', NOT_SENT_OURS],
  ['PEERLB_BREAKER_OPEN', NOT_SENT_OURS],
  ['PEERLB_CLOSED', NOT_SENT_OURS],
  // May have reached the peer.
  ['ECONNRESET', RESET],
  ['ECONNABORTED', RESET],
  ['EPIPE', RESET],
  ['UND_ERR_SOCKET', RESET],
  ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', RESET],
  ['UND_ERR_HEADERS_OVERFLOW', RESET],
  ['UND_ERR_RES_EXCEEDED_MAX_SIZE', RESET],
  ['UND_ERR_INFO', RESET],
  ['UND_ERR_DESTROYED', RESET_OURS],
  ['UND_ERR_HEADERS_TIMEOUT', TIMEOUT],
  ['UND_ERR_BODY_TIMEOUT', TIMEOUT],
  ['ETIMEDOUT', TIMEOUT],
  ['ESOCKETTIMEDOUT', TIMEOUT],
  // Ours.
  ['ABORT_ERR', LOCAL],
  ['UND_ERR_ABORTED', LOCAL],
  ['UND_ERR_ABORT', LOCAL],
  ['PEERLB_ABORTED', LOCAL],
  ['PEERLB_DEADLINE', LOCAL],
  ['PEERLB_BODY_TOO_LARGE', LOCAL],
  ['UND_ERR_INVALID_ARG', LOCAL],
  ['UND_ERR_INVALID_RETURN_VALUE', LOCAL],
  ['UND_ERR_NOT_SUPPORTED', LOCAL],
  ['UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', LOCAL],
]);

const MAX_CAUSE_DEPTH = 5;

/**
 * Classifies an error thrown by an attempt (undici `request`/`fetch`, a Pool, a breaker).
 * Follows `cause` (fetch wraps errors in `TypeError('fetch failed')`) and looks into
 * `AggregateError`s (happy eyeballs). An unknown error is assumed to be `sent`: retried only when
 * idempotent, and counted against the peer — the safe side for both questions.
 */
export function classifyFailure(error: unknown): FailureClass {
  let current: unknown = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current !== null && typeof current === 'object'; depth++) {
    const e = current as { code?: unknown; name?: unknown; errors?: unknown; cause?: unknown };
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (code !== undefined) {
      const rule = RULES.get(code) ?? ruleForPrefix(code);
      if (rule !== undefined) return { ...rule, code };
    }
    // DOMException-style aborts carry no undici code: AbortSignal.abort() / AbortSignal.timeout().
    if (e.name === 'AbortError' || e.name === 'TimeoutError') return { ...LOCAL, code };
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      const inner = e.errors.map((x) => classifyFailure(x));
      if (inner.every((c) => c.phase === 'connect')) return inner[0]!;
    }
    current = e.cause;
  }
  return { ...RESET, code: codeOf(error) };
}

function ruleForPrefix(code: string): Rule | undefined {
  if (code.startsWith('HPE_')) return RESET;
  if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_')) return CONNECT;
  return undefined;
}

function codeOf(error: unknown): string | undefined {
  const code = error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

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
  /** The response's `Retry-After`, parsed (`parseRetryAfter`). */
  readonly retryAfterMs?: number;
}

export type RetryRefusal =
  | 'local'
  | 'attempts'
  | 'deadline'
  | 'body-not-replayable'
  | 'not-idempotent'
  | 'status';

export type RetryDecision =
  | {
      readonly retry: true;
      /**
       * How long the peer that answered asked not to be sent more (429/503 `Retry-After`); 0
       * otherwise. The retry itself always goes to ANOTHER peer (the caller excludes the ones
       * tried); this is for the caller to keep the peer aside beyond this call.
       */
      readonly avoidPeerMs: number;
    }
  | { readonly retry: false; readonly why: RetryRefusal };

const RETRY: RetryDecision = Object.freeze({ retry: true, avoidPeerMs: 0 });
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
 * separately, last, so a refused retry does not spend it.
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
  const avoid = q.phase === 'response' ? (q.retryAfterMs ?? 0) : 0;
  return avoid > 0 ? { retry: true, avoidPeerMs: avoid } : RETRY;
}

/**
 * Parses a `Retry-After` header (delta-seconds or an HTTP-date) into milliseconds from `nowMs`
 * (a wall-clock reading, `Date.now()`, since HTTP-dates are wall-clock). Undefined when absent
 * or unparseable; never negative.
 */
export function parseRetryAfter(header: string | readonly string[] | undefined, nowMs: number): number | undefined {
  const value = typeof header === 'string' ? header : header?.[0];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export interface RetryBudgetOptions {
  /** Retries allowed per request seen in the window. Default 0.2 (one retry per five requests). */
  ratio?: number;
  /** A floor, so that a quiet client can still retry: this many per second of window. Default 10. */
  minPerSec?: number;
  /** The sliding window. Default 10 000 ms. */
  windowMs?: number;
}

const SLOTS = 10;

/**
 * A retry budget (Finagle `RetryBudget`, linkerd): over a sliding window, retries may not exceed
 * `ratio` × requests + `minPerSec` × window seconds. When peers fail en masse, retries cannot
 * multiply the load beyond `1 + ratio`. Explicit `now`, no timers; O(1) amortised. The window
 * slides by tenths (a request counts for between 0.9 and 1 window).
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #reserve: number;
  readonly #slotMs: number;
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  #requestTotal = 0;
  #retryTotal = 0;
  /** Absolute slot number of the newest slot; -Infinity before the first call. */
  #slot = Number.NEGATIVE_INFINITY;

  constructor(options?: RetryBudgetOptions, field = 'retryBudget') {
    const o = optionsObject(field, options);
    this.#ratio = numberOption(`${field}.ratio`, o.ratio, 0.2, { min: 0, max: 1000 });
    const minPerSec = numberOption(`${field}.minPerSec`, o.minPerSec, 10, { min: 0 });
    const windowMs = numberOption(`${field}.windowMs`, o.windowMs, 10_000, { min: SLOTS });
    this.#slotMs = windowMs / SLOTS;
    this.#reserve = (minPerSec * windowMs) / 1000;
  }

  /** Records one original request (not a retry). */
  deposit(now: number): void {
    const i = this.#advance(now);
    this.#requests[i]!++;
    this.#requestTotal++;
  }

  /** Asks for one retry: true and counted if the budget allows it, false otherwise. */
  tryWithdraw(now: number): boolean {
    const i = this.#advance(now);
    if (this.#allowed() - this.#retryTotal < 1) return false;
    this.#retries[i]!++;
    this.#retryTotal++;
    return true;
  }

  /** Retries still allowed in the window at `now`. */
  balance(now: number): number {
    this.#advance(now);
    return Math.max(0, Math.floor(this.#allowed() - this.#retryTotal));
  }

  #allowed(): number {
    // The epsilon keeps 5 × 0.2 from landing just under 1.
    return this.#ratio * this.#requestTotal + this.#reserve + 1e-9;
  }

  #advance(now: number): number {
    const slot = Math.floor(now / this.#slotMs);
    if (slot > this.#slot) {
      const steps = Math.min(SLOTS, slot - this.#slot);
      for (let k = 1; k <= steps; k++) {
        const i = mod(slot - steps + k, SLOTS);
        this.#requestTotal -= this.#requests[i]!;
        this.#retryTotal -= this.#retries[i]!;
        this.#requests[i] = 0;
        this.#retries[i] = 0;
      }
      this.#slot = slot;
    }
    // A clock that steps back counts into the newest slot.
    return mod(this.#slot, SLOTS);
  }
}

function mod(a: number, n: number): number {
  const r = a % n;
  return r < 0 ? r + n : r;
}
