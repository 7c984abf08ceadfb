import { PeerlbError } from '@peerlb/registry';

/** The public face of a peer in errors, events and responses: no breaker, no pool. */
export interface PeerInfo {
  readonly id: string;
  readonly address: string;
  readonly port: number;
}

interface FailureDetails {
  readonly service: string;
  /** Every peer an attempt was sent to (or tried to connect to), in order. */
  readonly peersTried: readonly PeerInfo[];
  readonly cause?: unknown;
}

/**
 * No peer could take the request: the service has no healthy instance, every candidate was
 * excluded, or nothing was heard from the registry before the deadline (`cause` then holds the
 * registry's last error, if any).
 */
export class NoPeersError extends PeerlbError {
  readonly service: string;
  readonly peersTried: readonly PeerInfo[];
  /** Why, so a caller can react (e.g. shed load on `all-busy`, alert on `registry-unavailable`). */
  readonly reason: NoPeersReason;

  constructor(message: string, details: FailureDetails & { readonly reason: NoPeersReason }) {
    super('PEERLB_NO_PEERS', message, details.cause === undefined ? undefined : { cause: details.cause });
    this.service = details.service;
    this.peersTried = details.peersTried;
    this.reason = details.reason;
  }
}

/**
 * - `no-answer`: the registry had not answered for the service before the call's deadline.
 * - `registry-unavailable`: the registry has been failing for longer than `maxStalenessMs`.
 * - `no-instances`: the registry lists no healthy instance.
 * - `all-busy`: every peer has `maxConcurrentPerPeer` requests in flight.
 * - `all-refused`: every peer's breaker refuses calls now (open, or half-open with its trial out),
 *   or has left since the pick.
 */
export type NoPeersReason = 'no-answer' | 'registry-unavailable' | 'no-instances' | 'all-busy' | 'all-refused';

/** The call's deadline (`timeoutMs`) passed before a response arrived; `cause` is the last attempt's error. */
export class DeadlineError extends PeerlbError {
  readonly service: string;
  readonly timeoutMs: number;
  readonly peersTried: readonly PeerInfo[];

  constructor(details: FailureDetails & { readonly timeoutMs: number }) {
    super(
      'PEERLB_DEADLINE',
      `request to "${details.service}" exceeded its ${details.timeoutMs} ms deadline`,
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    this.service = details.service;
    this.timeoutMs = details.timeoutMs;
    this.peersTried = details.peersTried;
  }
}

/**
 * The request failed on the peers it was sent to and could not (or could no longer) be retried:
 * not safe to repeat, retries or retry budget exhausted. `cause` is the last attempt's error.
 */
export class UpstreamError extends PeerlbError {
  readonly service: string;
  readonly peersTried: readonly PeerInfo[];
  /** Why no further attempt was made. */
  readonly reason: 'not-retryable' | 'attempts-exhausted' | 'budget-exhausted' | 'no-other-peer';

  constructor(message: string, details: FailureDetails & { readonly reason: UpstreamError['reason'] }) {
    super('PEERLB_UPSTREAM', message, details.cause === undefined ? undefined : { cause: details.cause });
    this.service = details.service;
    this.peersTried = details.peersTried;
    this.reason = details.reason;
  }
}

/**
 * A body was larger than the client's limit (`maxRequestBodyBytes`, `maxResponseBodyBytes`).
 * A request body: refused before anything was sent (or, for a stream, cut off while sending, and
 * never retried). A response body: refused at the headers when `Content-Length` says so (the
 * connection is dropped, nothing read), else what reading the body rejects with once it passes
 * the limit. Not the peer's fault, never retried.
 */
export class BodyTooLargeError extends PeerlbError {
  readonly service: string;
  readonly direction: 'request' | 'response';
  readonly limitBytes: number;
  /** The peer that answered, for a response. */
  readonly peer: PeerInfo | undefined;

  constructor(details: { service: string; direction: 'request' | 'response'; limitBytes: number; peer?: PeerInfo }) {
    super(
      'PEERLB_BODY_TOO_LARGE',
      `${details.direction} body of a call to "${details.service}" is larger than the ${details.limitBytes}-byte limit`,
    );
    this.service = details.service;
    this.direction = details.direction;
    this.limitBytes = details.limitBytes;
    this.peer = details.peer;
  }
}

/**
 * A peer gave no response headers in time: within `attemptTimeoutMs`, or before the call's
 * deadline passed. It is the peer's failure (breaker, outlier detection: a hung peer is ejected
 * like a dead one); after a per-attempt timeout, an idempotent call is retried on another peer.
 */
export class AttemptTimeoutError extends PeerlbError {
  readonly service: string;
  readonly peer: PeerInfo;
  readonly timeoutMs: number;

  constructor(details: { service: string; peer: PeerInfo; timeoutMs: number }) {
    super(
      'PEERLB_ATTEMPT_TIMEOUT',
      `peer ${details.peer.id} of "${details.service}" gave no response headers within ${Math.round(details.timeoutMs)} ms`,
    );
    this.service = details.service;
    this.peer = details.peer;
    this.timeoutMs = details.timeoutMs;
  }
}

/** The peer's breaker refused the call; nothing was sent. */
export class BreakerOpenError extends PeerlbError {
  readonly peerId: string;

  constructor(peerId: string) {
    super('PEERLB_BREAKER_OPEN', `circuit breaker of peer "${peerId}" is open`);
    this.peerId = peerId;
  }
}

const MAX_CALLER_IN_MESSAGE = 64;

/** A caller went over its rate limit; no request was sent. Retry after `retryAfterMs`. */
export class RateLimitedError extends PeerlbError {
  readonly retryAfterMs: number;
  readonly caller: string;

  constructor(caller: string, retryAfterMs: number, options?: { cause?: unknown }) {
    const shown = caller.length > MAX_CALLER_IN_MESSAGE ? `${caller.slice(0, MAX_CALLER_IN_MESSAGE)}...` : caller;
    super(
      'PEERLB_RATE_LIMITED',
      `caller ${JSON.stringify(shown)} is over its rate limit; retry after ${retryAfterMs} ms`,
      options,
    );
    this.retryAfterMs = retryAfterMs;
    this.caller = caller;
  }
}
