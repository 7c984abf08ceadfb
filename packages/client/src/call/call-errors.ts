import { InvalidOptionsError } from '@peerlb/registry';
import { DeadlineError, NoPeersError, UpstreamError, type PeerInfo } from '../errors.js';
import type { ServicePeers } from '../peers/service-peers.js';
import type { Attempt } from './attempt.js';

/** The errors a call ends with, built one way for both front doors (same class, same message). */

export function deadlineError(svc: ServicePeers, timeoutMs: number, attempts: readonly Attempt[], cause: unknown): DeadlineError {
  return new DeadlineError({ service: svc.service, timeoutMs, peersTried: peersTried(attempts), cause });
}

export function upstreamError(
  svc: ServicePeers,
  attempts: readonly Attempt[],
  reason: UpstreamError['reason'],
  error: unknown,
): UpstreamError {
  const tried = peersTried(attempts);
  const last = tried[tried.length - 1];
  const message = `request to "${svc.service}" failed after ${tried.length} attempt(s)${
    last ? ` (last peer ${last.id})` : ''
  }: ${(error as Error)?.message ?? String(error)}`;
  return new UpstreamError(message, { service: svc.service, peersTried: tried, cause: error, reason });
}

/** Nothing heard from the registry for the service within `waitMs`. */
export function noAnswerError(svc: ServicePeers, waitMs: number, cause: unknown): NoPeersError {
  const service = svc.service;
  return new NoPeersError(`no answer from the registry for "${service}" within ${waitMs} ms`, {
    service,
    peersTried: [],
    reason: 'no-answer',
    cause: svc.watch.error ?? cause,
  });
}

/** Our own abort, or an argument the transport refused: never retried, never the peer's fault. */
export function localError(svc: ServicePeers, attempt: Attempt, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
    // The peer's pool refused the request's arguments: it needs a fresh pool.
    svc.refused(attempt.peer, error);
    return new InvalidOptionsError('request', (error as Error).message, { cause: error });
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return new InvalidOptionsError('headers.content-length', 'does not match the body', { cause: error });
  }
  return error;
}

function peersTried(attempts: readonly Attempt[]): PeerInfo[] {
  return attempts.map((attempt) => attempt.peer.info);
}
