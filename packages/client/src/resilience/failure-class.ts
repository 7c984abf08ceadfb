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
  // No response headers in time from this peer (per-attempt timeout, or the call's deadline).
  ['PEERLB_ATTEMPT_TIMEOUT', TIMEOUT],
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

