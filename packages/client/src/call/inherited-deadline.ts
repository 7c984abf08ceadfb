import { TIMEOUT_HEADER, currentDeadline, formatTimeout } from '@peerlb/deadline';
import { DeadlineError } from '../errors.js';
import type { CallContext, HeaderStep } from './context.js';

/** Default share of an inherited budget kept back for the answer's way back to our own caller. */
export const DEFAULT_DEADLINE_ALLOWANCE_MS = 10;

/** What a call takes over from the request being handled around it. */
export interface Inherited {
  /** The call's deadline: its own `timeoutMs`, or less when the inherited budget is shorter. */
  readonly timeoutMs: number;
  /** The budget came from the request being handled (and is shorter than the call's own). */
  readonly inherited: boolean;
  /** Aborts when the handled request is cancelled (its caller went away) or its budget runs out. */
  readonly signal: AbortSignal | undefined;
}

/**
 * The deadline of a call made while handling a request that has one (`@peerlb/deadline`'s context,
 * set by the serving side): the time it has left minus `allowanceMs`, if shorter than the call's
 * own `timeoutMs`. `timeoutMs <= 0` means no time is left: the call must fail before sending.
 * Outside a handled request (or with `inherit` off) the call keeps its own timeout.
 */
export function inheritDeadline(ownTimeoutMs: number, allowanceMs: number, now: number = performance.now()): Inherited {
  const deadline = currentDeadline();
  if (deadline === undefined) return { timeoutMs: ownTimeoutMs, inherited: false, signal: undefined };
  const left = deadline.expiresAt - now - allowanceMs;
  // The request's signal is followed either way: its caller leaving ends our calls for it too.
  const signal = deadline.signal;
  if (left >= ownTimeoutMs) return { timeoutMs: ownTimeoutMs, inherited: false, signal };
  return { timeoutMs: left, inherited: true, signal };
}

/** The deadline a call is admitted with (see `inheritDeadline`); throws when none is left. */
export function admitDeadline(ctx: CallContext, service: string, ownTimeoutMs: number): Inherited {
  if (!ctx.propagateDeadline) return { timeoutMs: ownTimeoutMs, inherited: false, signal: undefined };
  const got = inheritDeadline(ownTimeoutMs, ctx.deadlineAllowanceMs);
  if (got.inherited && !(got.timeoutMs > 0)) {
    // Nothing is sent: the caller of the request being handled has given up already, or will
    // before any answer could come back.
    throw new DeadlineError({ service, timeoutMs: 0, peersTried: [], inherited: true });
  }
  return got;
}

/**
 * Sends each attempt's time left in `x-peerlb-timeout` (nothing for a call without a deadline),
 * minus `allowanceMs`: the request's way to the peer and the wait before the peer reads it (its
 * event loop may be busy) come out of the budget, and the peer's clock only starts when it reads
 * the header. When little time is left, half of it is sent instead, never nothing.
 */
export function deadlineHeaderStep(allowanceMs: number): HeaderStep {
  return (call, set) => {
    const left = call.timeLeftMs;
    if (left === Infinity) return;
    set(TIMEOUT_HEADER, formatTimeout(left > 2 * allowanceMs ? left - allowanceMs : left / 2));
  };
}
