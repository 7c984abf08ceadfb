/**
 * The one attempt loop. Both front doors, `client.request()` (request/request-call.ts) and
 * `client.dispatcher()` (dispatcher/dispatch-call.ts), are thin subclasses of `CallLoop`:
 *
 *   admit   (the door: validate, caller rate limit; here: counters, budget deposit, deadline)
 *   -> pick        picker snapshot, never a peer already tried (pick.ts)
 *   -> guard       the peer's breaker admits the attempt (attempt.ts)
 *   -> send        the door's transport adapter (`send`)
 *   -> report      `attempt.done(outcome)`: load tracker, breaker, outlier detection, stats
 *   -> retry?      shouldRetry, then ANOTHER peer, then the budget (in that order)
 *
 * Seams for what comes next:
 * - Feedback: `Attempt.done(outcome)` is the one place it goes; the outcome carries the answer's
 *   status and headers (server-reported load) and the error (the breaker's fault rule).
 * - Hedging (hedging/call-hedger.ts): when `spec.hedge` is set, a `CallHedger` waits the delay
 *   after the first attempt and asks `launchHedge` for another attempt on a peer not tried yet,
 *   drawing on `ctx.budget`, which hedges share with retries. The first answer wins
 *   (`answered`), the others are aborted and released at once (`abortOthers`); a failure waits
 *   for attempts still in flight before deciding (`afterFailure`).
 * - Deadlines across hops: the door admits the call with the deadline inherited from the request
 *   being handled (call/inherited-deadline.ts); `spec.parentSignal` ends the call when that request
 *   is cancelled, and `deadlineHeaderStep` sends each attempt's time left.
 * - Outgoing headers: `ctx.headerSteps` run for every attempt of both doors (`addHeaders`), with
 *   the call's time left (deadline propagation) and attempt number (tracing).
 * - The doors differ only in parameters: the deadline (`spec.timeoutMs`: the dispatcher's is the
 *   caller's own signal), how an answer is handed over (`deliver`), how a call fails (`failed`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { AbortedError, ClosedError } from '@peerlb/registry';
import {
  classifyFailure,
  retryAfterMs,
  shouldRetry,
  type FailureClass,
  type RetryDecision,
  type RetryQuestion,
} from '../resilience/index.js';
import { AttemptTimeoutError, DeadlineError, type UpstreamError } from '../errors.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';
import { Attempt, type AttemptOwner } from './attempt.js';
import type { CallContext, CallSpec, OutgoingCall } from './context.js';
import type { Deadline, DeadlineQueue } from './deadlines.js';
import { deadlineError, localError, noAnswerError, upstreamError } from './call-errors.js';
import { errorOutcome, isFailureStatus, statusOutcome } from './outcome.js';
import { CallHedger, type HedgeHost } from '../hedging/call-hedger.js';
import { ServiceHedging } from '../hedging/service-hedging.js';
import { noPeersError, pickPeer, type PickState } from './pick.js';
import type { AttemptOutcome } from './outcome.js';

/** A caller's abort that is a timeout (`AbortSignal.timeout()`): a hung peer's fault, like our deadline. */
export function isTimeoutReason(reason: unknown): boolean {
  return (reason as { name?: unknown } | null)?.name === 'TimeoutError';
}

export abstract class CallLoop<A extends Attempt = Attempt> implements Deadline, AttemptOwner, HedgeHost {
  // Deadline links, owned by ctx.deadlines.
  dueAt = 0;
  previousDue: Deadline | undefined = undefined;
  nextDue: Deadline | undefined = undefined;
  lane: Deadline['lane'] = undefined;
  readonly clock: () => number;
  readonly deadlines: DeadlineQueue;
  /** Every attempt made, in order. */
  protected readonly attempts: A[] = [];
  /** The call has its result: an answer handed to the caller, or an error. */
  protected ended = false;
  private readonly deadlineAt: number;
  private readonly pickState: PickState;
  private lastError: unknown;
  private budgetRefused = false;
  private discovery: AbortController | undefined;
  /** The hedging step, for a call that hedges (see `spec.hedge`). */
  private hedger: CallHedger | undefined;
  /** Attempts launched as hedges (how a winner is told from the first attempt or a retry). */
  private hedges: Attempt[] | undefined;
  private onParentAbort: (() => void) | undefined;
  /** The call's span (undefined when not traced); ended, and cleared, when the call is over. */
  private trace: object | undefined;
  /** The attempt whose answer was handed over, for the call's span. */
  private delivered: Attempt | undefined;
  private deliveredStatus: number | undefined;
  private failure: unknown;

  constructor(
    readonly ctx: CallContext,
    readonly svc: ServicePeers,
    readonly spec: CallSpec,
    now: number,
  ) {
    this.clock = ctx.clock;
    this.deadlines = ctx.deadlines;
    this.deadlineAt = now + spec.timeoutMs;
    this.pickState = { random: ctx.random, now, exclude: undefined, key: spec.key };
  }

  /** Makes the door's attempt object for `peer`. */
  protected abstract newAttempt(peer: Peer, number: number, now: number): A;
  /** Sends `attempt` through the door's transport; it reports back with `answered` / `attemptFailed`. */
  abstract send(attempt: A): void;
  /** Ends the call with `error` (the door rejects or calls the handler's error callback). */
  protected abstract failed(error: unknown): void;

  /** The end of admission: counts the call, feeds the budget, arms the deadline, picks. */
  protected begin(now: number): void {
    this.svc.counters.requests++;
    this.ctx.budget?.deposit(now);
    this.trace = this.ctx.telemetry?.startCall(this.svc.service, this.spec.method);
    if (this.spec.timeoutMs !== Infinity) this.ctx.deadlines.add(this, this.spec.timeoutMs);
    const parent = this.spec.parentSignal;
    if (parent !== undefined) {
      if (parent.aborted) return this.endWith(this.parentEnded(parent));
      this.onParentAbort = () => this.end(this.parentEnded(parent), false);
      parent.addEventListener('abort', this.onParentAbort, { once: true });
    }
    if (this.svc.watch.hasBeenSeen) this.first(now);
    else this.waitForDiscovery();
  }

  private first(now: number): void {
    if (this.svc.isClosed) return this.endWith(new ClosedError('client'));
    this.pickState.now = now;
    const peer = pickPeer(this.svc, this.pickState);
    if (peer === undefined) return this.endWith(noPeersError(this.svc, []));
    this.launch(peer, now);
    const hedge = this.spec.hedge;
    if (hedge !== undefined && !this.ended) {
      this.hedger = new CallHedger(hedge, (this.svc.hedging ??= new ServiceHedging()), this);
      this.hedger.start(now);
    }
  }

  /** Nothing has answered yet and the call goes on (the hedger asks before each hedge). */
  get waiting(): boolean {
    if (this.ended) return false;
    for (const attempt of this.attempts) if (attempt.isAnswered) return false;
    return true;
  }

  timeLeftMs(now: number): number {
    return this.deadlineAt - now;
  }

  /** One more attempt, on a peer not tried yet, if the shared budget allows: a hedge. */
  launchHedge(now: number, delayMs: number): boolean {
    const peer = this.otherPeer(now);
    if (peer === undefined) return false;
    const number = this.attempts.length + 1;
    this.launch(peer, now);
    (this.hedges ??= []).push(this.attempts[number - 1]!);
    const events = this.ctx.events;
    if (events.has('hedge')) events.emit('hedge', { service: this.svc.service, peer: peer.info, attempt: number, delayMs });
    return true;
  }

  /** Starts an attempt on `peer` (the first, a retry, or a hedge). */
  protected launch(peer: Peer, now: number): void {
    const attempt = this.newAttempt(peer, this.attempts.length + 1, now);
    this.svc.recentPicks.add(peer.id, attempt.number, now);
    if (this.trace !== undefined) {
      attempt.span = this.ctx.telemetry!.startAttempt(this.trace, peer, attempt.number, this.spec.method, this.spec.path);
    }
    this.attempts.push(attempt);
    attempt.begin(this.ctx.attemptTimeoutMs);
  }

  /**
   * The response headers of `attempt` came. True: the door hands this answer to the caller (and
   * calls `attempt.done` when its body ends); false: the door drops it (the loop has reported it
   * and moved on, or the call had ended already).
   */
  answered(attempt: A, statusCode: number, headers: IncomingHttpHeaders): boolean {
    attempt.answered();
    if (this.ended || attempt.settled) return false;
    if (isFailureStatus(statusCode)) {
      const now = this.ctx.clock();
      const asideMs = retryAfterMs(statusCode, headers);
      if (asideMs !== undefined) this.svc.avoid(attempt.peer, Math.min(asideMs, this.ctx.maxRetryAfterMs));
      const decision = this.retryDecision('response', attempt, now, statusCode);
      const next = decision.retry ? this.nextPeer(now) : undefined;
      if (next !== undefined) {
        // This answer is dropped for another try: report it now.
        attempt.done(statusOutcome(statusCode, headers, now - attempt.startedAt));
        this.announceRetry(attempt, undefined, statusCode);
        this.launch(next, now);
        return false;
      }
      // No other peer, budget or attempt: the caller gets this answer, 5xx or not.
    }
    this.ended = true;
    const hedger = this.hedger;
    if (hedger !== undefined) this.hedgeAnswered(hedger, attempt, statusCode);
    this.delivered = attempt;
    this.deliveredStatus = statusCode;
    this.abortOthers(attempt);
    return true;
  }

  /**
   * The call has its answer: a latency sample for the percentile delay, and a hedge that won.
   * The sample is the winning attempt's own latency, not the call's: a slow attempt that lost to
   * a hedge is left out, so the percentile describes how long a peer usually takes, and hedging
   * does not drift its own delay upwards (a call's latency includes the delay it waited).
   */
  private hedgeAnswered(hedger: CallHedger, winner: Attempt, statusCode: number): void {
    const now = this.ctx.clock();
    if (!isFailureStatus(statusCode)) hedger.answered(now - winner.startedAt, now);
    else hedger.stop();
    if (this.hedges === undefined || !this.hedges.includes(winner)) return;
    const hedging = this.svc.hedging!;
    hedging.won++;
    hedging.credit.won();
    const events = this.ctx.events;
    if (events.has('hedge:won')) events.emit('hedge:won', { service: this.svc.service, peer: winner.peer.info, attempt: winner.number });
  }

  attemptFailed(attempt: Attempt, error: unknown): void {
    if (attempt.settled) return;
    const failure = classifyFailure(error);
    const judged = attempt.done(errorOutcome(error, this.ctx.clock() - attempt.startedAt, failure));
    if (this.ended) return;
    this.lastError = error;
    // Wait for the breaker's verdict, so the state the caller sees next reflects this failure.
    if (judged === undefined) this.afterFailure(attempt, error, failure);
    else {
      // Here nothing up the stack would catch what the door throws (a caller's handler): report it.
      judged
        .then(() => this.afterFailure(attempt, error, failure))
        .catch((err: unknown) => this.reportThrown(err));
    }
  }

  attemptTimedOut(attempt: Attempt): void {
    if (attempt.settled || attempt.isAnswered) return;
    const error = new AttemptTimeoutError({
      service: this.svc.service,
      peer: attempt.peer.info,
      timeoutMs: this.ctx.attemptTimeoutMs,
    });
    this.attemptFailed(attempt, error);
    attempt.abort(error);
  }

  private afterFailure(attempt: Attempt, error: unknown, failure: FailureClass): void {
    if (this.ended) return;
    // Another attempt still in flight (a hedge) may yet answer.
    for (const other of this.attempts) if (!other.settled) return;
    if (failure.phase === 'local') return this.endWith(localError(this.svc, attempt, error));
    const now = this.ctx.clock();
    const decision = this.retryDecision(failure.phase, attempt, now, undefined);
    if (!decision.retry) {
      if (decision.why === 'deadline') return this.endWith(this.deadlineError());
      return this.endWith(this.upstream(error, decision.why === 'attempts' ? 'attempts-exhausted' : 'not-retryable'));
    }
    const next = this.nextPeer(now);
    if (next === undefined) return this.endWith(this.upstream(error, this.budgetRefused ? 'budget-exhausted' : 'no-other-peer'));
    this.announceRetry(attempt, error, undefined);
    this.launch(next, now);
  }

  reportThrown(error: unknown): void {
    this.ctx.events.warn(`a call to "${this.svc.service}" threw in its front door`, error);
  }

  private retryDecision(phase: RetryQuestion['phase'], attempt: Attempt, now: number, statusCode: number | undefined): RetryDecision {
    const spec = this.spec;
    return shouldRetry({
      phase,
      method: spec.method,
      idempotent: spec.idempotent,
      bodyReplayable: spec.replayable,
      attempt: attempt.number,
      maxAttempts: this.ctx.maxAttempts,
      timeLeftMs: this.deadlineAt - now,
      statusCode,
    });
  }

  /** Another peer for a retry (never one tried) if the picker has one, then the budget's consent. */
  private nextPeer(now: number): Peer | undefined {
    const peer = this.otherPeer(now);
    if (peer !== undefined) this.svc.counters.retries++;
    return peer;
  }

  /** A peer not tried yet, then the shared budget's consent (retries and hedges draw on it alike). */
  private otherPeer(now: number): Peer | undefined {
    this.budgetRefused = false;
    const exclude = (this.pickState.exclude ??= new Set());
    for (const attempt of this.attempts) exclude.add(attempt.peer.id);
    this.pickState.now = now;
    const peer = pickPeer(this.svc, this.pickState);
    if (peer === undefined) return undefined;
    if (this.ctx.budget !== undefined && !this.ctx.budget.tryWithdraw(now)) {
      this.budgetRefused = true;
      return undefined;
    }
    return peer;
  }

  /** Attempts still in flight besides the winner are aborted and released at once. */
  private abortOthers(winner: Attempt): void {
    for (const other of this.attempts) {
      if (other === winner || other.settled) continue;
      const reason = new AbortedError('another attempt answered first');
      other.done(errorOutcome(reason, this.ctx.clock() - other.startedAt));
      other.abort(reason);
      const hedging = this.svc.hedging;
      if (hedging !== undefined) hedging.cancelled++;
      const events = this.ctx.events;
      if (events.has('attempt:cancelled')) {
        events.emit('attempt:cancelled', { service: this.svc.service, peer: other.peer.info, attempt: other.number });
      }
    }
  }

  /** The call's deadline passed (called by `ctx.deadlines`). */
  expire(): void {
    this.end(this.deadlineError(), true);
  }

  /**
   * Ends the call from outside (deadline, the caller's abort). An attempt still waiting for its
   * response headers is settled at once, whatever its transport does (a request stuck in a pool
   * queue would outlive the deadline), and counts as the peer's failure when `peerTimedOut`: a
   * peer that gave no headers within the deadline is hung, not merely slow to be read. A
   * delivered attempt has its body cut; the door reports it when the body closes.
   */
  end(reason: unknown, peerTimedOut: boolean): void {
    const now = this.ctx.clock();
    for (const attempt of this.attempts) {
      if (!attempt.settled && !attempt.isAnswered) {
        const error = peerTimedOut
          ? new AttemptTimeoutError({ service: this.svc.service, peer: attempt.peer.info, timeoutMs: now - attempt.startedAt })
          : reason;
        attempt.done(errorOutcome(error, now - attempt.startedAt));
      }
      attempt.abort(reason);
    }
    if (this.ended) return;
    if (this.discovery !== undefined && reason instanceof DeadlineError) {
      return this.endWith(noAnswerError(this.svc, this.spec.timeoutMs, reason));
    }
    this.endWith(reason);
  }

  /** The call failed with `error`. */
  protected endWith(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = error;
    this.finish();
    this.svc.counters.failures++;
    this.failed(error);
  }

  /** The call is over (its answer's body ended, or it failed): its deadline and listeners go. */
  protected finish(): void {
    if (this.lane !== undefined) this.ctx.deadlines.remove(this);
    this.hedger?.stop();
    if (this.onParentAbort !== undefined) {
      this.spec.parentSignal!.removeEventListener('abort', this.onParentAbort);
      this.onParentAbort = undefined;
    }
    const discovery = this.discovery;
    this.discovery = undefined;
    discovery?.abort();
    const trace = this.trace;
    if (trace !== undefined) {
      this.trace = undefined;
      this.ctx.telemetry!.endCall(trace, this.delivered?.peer, this.attempts.length, this.deliveredStatus, this.failure);
    }
  }

  /** Each attempt's outcome, for telemetry (`Attempt.done` calls it). */
  attemptEnded(attempt: Attempt, outcome: AttemptOutcome): void {
    const telemetry = this.ctx.telemetry;
    if (telemetry === undefined) return;
    // The answer handed over failed with its body (cut by the deadline, reset): so did the call.
    if (attempt === this.delivered && outcome.error !== undefined) this.failure ??= outcome.error;
    telemetry.attemptDone(
      attempt.span,
      attempt.peer,
      this.spec.method,
      outcome.latencyMs,
      outcome.kind === 'failure',
      outcome.statusCode,
      outcome.error,
    );
  }

  /** Runs the header steps for `attempt`; `set` adds a header to what it sends. */
  protected addHeaders(attempt: Attempt, set: (name: string, value: string) => void): void {
    const call: OutgoingCall = {
      service: this.svc.service,
      attempt: attempt.number,
      timeLeftMs: Math.max(0, this.deadlineAt - this.ctx.clock()),
    };
    for (const step of this.ctx.headerSteps) step(call, set);
    if (attempt.span !== undefined) this.ctx.telemetry!.inject(attempt.span, set);
  }

  /** Whether `addHeaders` would add anything (the doors skip copying headers otherwise). */
  protected addsHeaders(attempt: Attempt): boolean {
    return this.ctx.headerSteps.length > 0 || attempt.span !== undefined;
  }

  private waitForDiscovery(): void {
    // Cold path (first call for a service): a real AbortSignal and timer are fine here.
    const controller = new AbortController();
    this.discovery = controller;
    const waitMs = this.spec.timeoutMs === Infinity ? this.ctx.timeoutMs : this.spec.timeoutMs;
    const timer = this.spec.timeoutMs === Infinity ? setTimeout(() => controller.abort(), waitMs) : undefined;
    timer?.unref();
    this.svc.watch
      .waitUntilSeen(controller.signal)
      .then(
        () => {
          clearTimeout(timer);
          this.discovery = undefined;
          if (!this.ended) this.first(this.ctx.clock());
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.discovery = undefined;
          if (this.svc.isClosed) return this.endWith(new ClosedError('client'));
          this.endWith(noAnswerError(this.svc, waitMs, err));
        },
      )
      .catch((err: unknown) => this.reportThrown(err));
  }

  private announceRetry(attempt: Attempt, error: unknown, statusCode: number | undefined): void {
    if (this.trace !== undefined) this.ctx.telemetry!.retry(this.trace, attempt.number, attempt.peer, statusCode, error);
    const events = this.ctx.events;
    if (!events.has('retry')) return;
    const base = { service: this.svc.service, peer: attempt.peer.info, attempt: attempt.number, error };
    events.emit('retry', statusCode === undefined ? base : { ...base, statusCode });
  }

  private deadlineError(): DeadlineError {
    return deadlineError(this.svc, this.spec.timeoutMs, this.attempts, this.lastError, this.spec.inheritedDeadline);
  }

  /**
   * The handled request this call was made for ended: its budget ran out (our own deadline, an
   * allowance earlier, normally fires first) or its caller went away.
   */
  private parentEnded(parent: AbortSignal): unknown {
    return isTimeoutReason(parent.reason) ? this.deadlineError() : new AbortedError(parent.reason);
  }

  private upstream(error: unknown, reason: Parameters<typeof upstreamError>[2]): UpstreamError {
    return upstreamError(this.svc, this.attempts, reason, error);
  }
}
