import type { CallerRateLimiter, RetryBudget } from '../resilience/index.js';
import type { ClientEvents } from '../events.js';
import type { ServicePeers } from '../peers/service-peers.js';
import type { HedgePolicy } from '../hedging/hedge-options.js';
import type { DeadlineQueue } from './deadlines.js';
import type { Peer } from '../peers/peer.js';

/** What a header step sees of the call, for each attempt. */
export interface OutgoingCall {
  readonly service: string;
  /** 1-based attempt number. */
  readonly attempt: number;
  /** Time left before the call's deadline (Infinity when it has none). */
  readonly timeLeftMs: number;
}

/** Adds outgoing headers to every attempt (deadline propagation, tracing): `set(name, value)`. */
export type HeaderStep = (call: OutgoingCall, set: (name: string, value: string) => void) => void;

/** What the call loop needs from the client. */
export interface CallContext {
  service(name: string): ServicePeers;
  readonly limiter: CallerRateLimiter | undefined;
  /** Extra load allowed beyond callers' requests: retries (and hedges) draw on it. */
  readonly budget: RetryBudget | undefined;
  readonly maxAttempts: number;
  /** Longest a Retry-After keeps a peer aside. */
  readonly maxRetryAfterMs: number;
  readonly timeoutMs: number;
  /** Longest an attempt waits for its response headers (Infinity: only the call's deadline). */
  readonly attemptTimeoutMs: number;
  readonly maxRequestBodyBytes: number;
  readonly maxResponseBodyBytes: number;
  readonly defaultCaller: string | undefined;
  readonly random: () => number;
  readonly clock: () => number;
  readonly events: ClientEvents;
  /** Where deadlines wait (one timer per timeout value, not one per call). */
  readonly deadlines: DeadlineQueue;
  readonly headerSteps: readonly HeaderStep[];
  /** The client's hedging (`hedge` option), for calls that may be repeated; undefined: off. */
  readonly hedge: HedgePolicy | undefined;
  /** Calls inherit the deadline of the request being handled around them (`propagateDeadline`). */
  readonly propagateDeadline: boolean;
  /** Kept back from an inherited budget for the answer's way back (`deadlineAllowanceMs`). */
  readonly deadlineAllowanceMs: number;
  /** OpenTelemetry spans and metrics; undefined (no work at all) when nothing is registered. */
  readonly telemetry: CallTelemetry | undefined;
}

/** What a door tells the loop about one call. */
export interface CallSpec {
  readonly method: string;
  readonly idempotent: boolean | undefined;
  /** The body can be sent again (not a stream). */
  readonly replayable: boolean;
  readonly key: string | undefined;
  /** The call's deadline; Infinity: none here (the dispatcher's is the caller's signal). */
  readonly timeoutMs: number;
  /** This call's hedging: the client's or its own, and only when it may be repeated. */
  readonly hedge: HedgePolicy | undefined;
  /**
   * The signal of the request being handled around this call (its caller left, or its budget
   * ran out): the call ends with it. Undefined outside a handled request with a deadline.
   */
  readonly parentSignal: AbortSignal | undefined;
  /** `timeoutMs` is what was left of the handled request's deadline, not the call's own. */
  readonly inheritedDeadline: boolean;
  /** The request path (query string included), for telemetry. */
  readonly path: string;
}

/**
 * The client's telemetry as the call loop uses it (`ClientTelemetry` implements it). Spans are
 * opaque objects here: these declarations are public (`BalancedDispatcher`), and must not need
 * `@opentelemetry/api`, an optional peer dependency.
 */
export interface CallTelemetry {
  /** The call's span, or undefined when calls are not traced. */
  startCall(service: string, method: string): object | undefined;
  startAttempt(call: object, peer: Peer, number: number, method: string, path: string): object;
  /** Adds the attempt's trace context to its request headers. */
  inject(span: object, set: (name: string, value: string) => void): void;
  attemptDone(
    span: object | undefined,
    peer: Peer,
    method: string,
    latencyMs: number,
    failed: boolean,
    statusCode: number | undefined,
    error: unknown,
  ): void;
  retry(call: object, attempt: number, peer: Peer, statusCode: number | undefined, error: unknown): void;
  endCall(call: object, peer: Peer | undefined, attempts: number, statusCode: number | undefined, error: unknown): void;
  rateLimited(service: string): void;
}
