import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { AbortedError, ClosedError, InvalidOptionsError, validateDurationMs } from '@peerlb/registry';
import { LOAD_REPORT_HEADER, type Outcome } from '../balancer/index.js';
import {
  classifyFailure,
  parseRetryAfter,
  RateLimitedError,
  shouldRetry,
  type CallerRateLimiter,
  type RetryBudget,
} from '../resilience/index.js';
import { BodyTooLargeError, DeadlineError, NoPeersError, UpstreamError, type PeerInfo } from '../errors.js';
import type { ClientEvents } from '../events.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';
import { bodyOutcome, errorOutcome, isFailureStatus, noPeersError, pickPeer, statusOutcome, type PickState } from './attempt.js';
import { checkRequestBody, declaresTooLarge, limitResponseBody } from './body-limits.js';
import type { Deadline, DeadlineQueue } from './deadlines.js';
import {
  isReplayableBody,
  prepareHeaders,
  validateMethod,
  validatePath,
  type RequestBody,
  type RequestHeaders,
  type RequestOptions,
} from './request-options.js';

/** A response body: undici's, with `text()`, `json()`, `arrayBuffer()`, `bytes()`, `blob()` and `dump()`. */
export type ResponseBody = Dispatcher.ResponseData['body'];

export interface BalancedResponse {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** Consume it (`text()`, `json()`, ...) or `dump()` it: the socket is reused only then. */
  readonly body: ResponseBody;
  /** The peer that answered. */
  readonly peer: PeerInfo;
}

/** What the request path needs from the client. */
export interface PipelineContext {
  service(name: string): ServicePeers;
  readonly limiter: CallerRateLimiter | undefined;
  readonly budget: RetryBudget | undefined;
  readonly maxAttempts: number;
  /** Longest a Retry-After keeps a peer aside. */
  readonly maxRetryAfterMs: number;
  readonly timeoutMs: number;
  /** Byte limits on bodies sent and received (Infinity: none). */
  readonly maxRequestBodyBytes: number;
  readonly maxResponseBodyBytes: number;
  readonly defaultCaller: string | undefined;
  readonly random: () => number;
  readonly clock: () => number;
  readonly events: ClientEvents;
  /** Where every call's deadline waits (one timer per timeout value, not one per call). */
  readonly deadlines: DeadlineQueue;
}

/** Rate limit, deadline, retries, pick, breaker, transport, feedback: one call, start to end. */
export function balancedCall(ctx: PipelineContext, options: RequestOptions): Promise<BalancedResponse> {
  if (options === null || typeof options !== 'object') {
    return Promise.reject(new InvalidOptionsError('options', 'must be an object'));
  }
  let call: Call;
  try {
    const path = validatePath(options.path);
    const method = validateMethod(options.method);
    const prepared = prepareHeaders(options.headers, options.caller, ctx.defaultCaller);
    const timeoutMs =
      options.timeoutMs === undefined ? ctx.timeoutMs : validateDurationMs(options.timeoutMs, 'timeoutMs');
    const signal = options.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidOptionsError('signal', 'must be an AbortSignal');
    }
    if (options.key !== undefined && typeof options.key !== 'string') {
      throw new InvalidOptionsError('key', 'must be a string');
    }
    if (options.idempotent !== undefined && typeof options.idempotent !== 'boolean') {
      throw new InvalidOptionsError('idempotent', 'must be a boolean');
    }
    if (options.query !== undefined && (options.query === null || typeof options.query !== 'object')) {
      throw new InvalidOptionsError('query', 'must be an object');
    }
    const svc = ctx.service(options.service);
    const body = checkRequestBody(options.body, ctx.maxRequestBodyBytes, svc.service);
    if (signal?.aborted) throw new AbortedError(signal.reason);
    if (ctx.limiter !== undefined) {
      const decision = ctx.limiter.take(prepared.caller ?? '', ctx.clock());
      if (!decision.ok) throw new RateLimitedError(prepared.caller ?? '', decision.retryAfterMs);
    }
    call = new Call(ctx, svc, options, path, method, prepared.headers, body, timeoutMs);
  } catch (err) {
    return Promise.reject(err);
  }
  return call.run();
}

/** Marks a 5xx/429 answer inside the breaker: it counts as a failure there, and carries the response out. */
class StatusFailure {
  constructor(
    readonly statusCode: number,
    readonly response: Dispatcher.ResponseData,
  ) {}
}

type Completion = (outcome: Outcome, now: number) => void;

/**
 * The state of one call across its attempts. One object per call holds what the attempts share
 * (deadline, peers tried, the pick context), so an attempt allocates little beyond undici's own.
 */
class Call implements Deadline {
  /** The call's own abort signal for undici (see `CallSignal`): the deadline and the caller's signal end here. */
  private readonly signal = new CallSignal();
  // Deadline links, owned by ctx.deadlines.
  dueAt = 0;
  previousDue: Deadline | undefined = undefined;
  nextDue: Deadline | undefined = undefined;
  lane: Deadline['lane'] = undefined;
  private readonly deadlineAt: number;
  /** Clock reading when the call started; the first pick and attempt use it too. */
  private readonly startedAt: number;
  /** Clock reading when the last attempt ended. */
  private endedAt = 0;
  private readonly tried: Peer[] = [];
  /** Reused for every pick of this call; `exclude` is allocated on the first retry only. */
  private readonly pickContext: PickState;
  private lastError: unknown;
  private readonly replayable: boolean;
  private onUserAbort: (() => void) | undefined;
  /** Settles the attempt waiting for its response headers, if any (see `end`). */
  private abandonAttempt: ((reason: unknown) => void) | undefined;
  /** The runner handed to the breaker; built on the first attempt under a breaker. */
  private sendUnderBreaker: (() => Promise<Dispatcher.ResponseData>) | undefined;
  // What the last attempt produced: a response (with its outcome and tracker completion) or an error.
  private peer: Peer | undefined;
  private response: Dispatcher.ResponseData | undefined;
  private outcome: Outcome | undefined;
  private completion: Completion | undefined;
  private error: unknown;
  /** The last retry was refused by the retry budget. */
  private budgetRefused = false;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly svc: ServicePeers,
    private readonly options: RequestOptions,
    private readonly path: string,
    private readonly method: string,
    private readonly headers: RequestHeaders | undefined,
    /** `options.body`, or a stream counting towards `maxRequestBodyBytes`. */
    private readonly body: RequestBody | undefined,
    private readonly timeoutMs: number,
  ) {
    this.replayable = isReplayableBody(options.body);
    // One clock reading serves the deadline, the retry budget, the first pick and the first attempt.
    const now = ctx.clock();
    this.startedAt = now;
    this.deadlineAt = now + timeoutMs;
    this.pickContext = { random: ctx.random, now, exclude: undefined, key: options.key };
    // Our own deadline rather than undici's headersTimeout, which ticks at about 1 s.
    ctx.deadlines.add(this, timeoutMs);
    const signal = options.signal;
    if (signal !== undefined) {
      this.onUserAbort = () => this.end(new AbortedError(signal.reason));
      signal.addEventListener('abort', this.onUserAbort, { once: true });
    }
    svc.counters.requests++;
    ctx.budget?.deposit(now);
  }


  async run(): Promise<BalancedResponse> {
    try {
      const signal = this.signal;
      let now = this.startedAt;
      if (!this.svc.watch.hasBeenSeen) {
        await this.waitForDiscovery();
        if (this.svc.isClosed) throw new ClosedError('client');
        now = this.ctx.clock();
      }
      let peer = this.pick(now);
      if (peer === undefined) throw this.noPeers();
      for (let attempt = 1; ; attempt++) {
        if (signal.aborted) throw signal.reason;
        const answered = await this.attempt(peer, now);
        now = this.endedAt;
        const timeLeftMs = this.deadlineAt - now;
        if (answered) {
          const response = this.response!;
          const statusCode = response.statusCode;
          if (!isFailureStatus(statusCode)) return this.deliver();
          const retryAfterMs = this.honourRetryAfter(peer, response);
          const decision = shouldRetry({
            phase: 'response',
            method: this.method,
            idempotent: this.options.idempotent,
            bodyReplayable: this.replayable,
            attempt,
            maxAttempts: this.ctx.maxAttempts,
            timeLeftMs,
            statusCode,
            retryAfterMs,
          });
          const next = decision.retry ? this.nextPeerForRetry(now) : undefined;
          // No other peer, budget or attempt: the caller gets this answer, 5xx or not.
          if (next === undefined) return this.deliver();
          // The answer is dropped for another try: count it now and free its socket.
          this.completeAttempt(this.outcome!);
          response.body.dump().catch(noop);
          this.announceRetry(peer, attempt, undefined, statusCode);
          peer = next;
          continue;
        }
        const error = this.error;
        this.lastError = error;
        const failure = classifyFailure(error);
        if (failure.phase === 'local') throw this.localError(error);
        const decision = shouldRetry({
          phase: failure.phase,
          method: this.method,
          idempotent: this.options.idempotent,
          bodyReplayable: this.replayable,
          attempt,
          maxAttempts: this.ctx.maxAttempts,
          timeLeftMs,
        });
        if (!decision.retry) {
          if (decision.why === 'deadline') throw this.deadline();
          throw this.upstream(error, decision.why === 'attempts' ? 'attempts-exhausted' : 'not-retryable');
        }
        const next = this.nextPeerForRetry(now);
        if (next === undefined) throw this.upstream(error, this.budgetRefused ? 'budget-exhausted' : 'no-other-peer');
        this.announceRetry(peer, attempt, error, undefined);
        peer = next;
      }
    } catch (err) {
      this.finish();
      this.svc.counters.failures++;
      throw err;
    }
  }

  /** Another peer (never one tried) if the picker has one and the retry budget allows it. */
  private nextPeerForRetry(now: number): Peer | undefined {
    this.budgetRefused = false;
    const exclude = (this.pickContext.exclude ??= new Set());
    for (const peer of this.tried) exclude.add(peer.id);
    const peer = this.pick(now);
    if (peer === undefined) return undefined;
    if (this.ctx.budget !== undefined && !this.ctx.budget.tryWithdraw(now)) {
      this.budgetRefused = true;
      return undefined;
    }
    this.svc.counters.retries++;
    return peer;
  }

  private pick(now: number): Peer | undefined {
    this.pickContext.now = now;
    return pickPeer(this.svc, this.pickContext);
  }

  /** One attempt on `peer`. True: a response arrived (`this.response`); false: an error (`this.error`). */
  private async attempt(peer: Peer, started: number): Promise<boolean> {
    const ctx = this.ctx;
    this.tried.push(peer);
    peer.requests++;
    this.peer = peer;
    const completion = peer.tracker.start(started);
    const breaker = peer.breakerForCall();
    let response: Dispatcher.ResponseData;
    try {
      if (breaker === undefined) {
        response = await this.send();
      } else if (breaker.admitsDirectCall()) {
        // The common case, without a promise around the call: the breaker hears the outcome.
        // No signal for it: our own aborts reject with DeadlineError/AbortedError, which its
        // fault rule already classifies as ours (never counted against the peer).
        try {
          response = await this.send();
        } catch (err) {
          await breaker.failed(err);
          throw err;
        }
        breaker.succeeded();
      } else {
        this.sendUnderBreaker ??= () => this.send();
        response = await breaker.run(this.sendUnderBreaker);
      }
    } catch (err) {
      const now = ctx.clock();
      this.endedAt = now;
      if (err instanceof StatusFailure) {
        this.response = err.response;
        this.outcome = statusOutcome(err.statusCode, now - started);
        this.completion = completion;
        return true;
      }
      const outcome = errorOutcome(classifyFailure(err), now - started);
      completion(outcome, now);
      this.svc.record(peer, outcome, now);
      this.error = err;
      return false;
    }
    const now = ctx.clock();
    this.endedAt = now;
    this.response = response;
    this.svc.loadReport(peer, response.headers[LOAD_REPORT_HEADER], now);
    this.outcome = statusOutcome(response.statusCode, now - started);
    this.completion = completion;
    return true;
  }

  /** Completes the load tracker and outlier detection for the attempt whose response is in hand. */
  private completeAttempt(outcome: Outcome): void {
    const now = this.ctx.clock();
    const completion = this.completion;
    this.completion = undefined;
    completion?.(outcome, now);
    this.svc.record(this.peer!, outcome, now);
  }

  private send(): Promise<Dispatcher.ResponseData> {
    const options = this.options;
    return new Promise<Dispatcher.ResponseData>((resolve, reject) => {
      this.abandonAttempt = reject;
      this.peer!.transport.dispatcher().request(
        {
          path: this.path,
          method: this.method as Dispatcher.HttpMethod,
          headers: this.headers as Dispatcher.RequestOptions['headers'],
          body: this.body as Dispatcher.RequestOptions['body'],
          query: options.query,
          signal: this.signal as unknown as EventEmitter,
        },
        (err, response) => {
          if (this.abandonAttempt !== reject) {
            // The call ended first (deadline, abort): nobody reads this answer; free its connection.
            if (!err) response.body.dump().catch(noop);
            return;
          }
          this.abandonAttempt = undefined;
          if (err) reject(err);
          else if (isFailureStatus(response.statusCode)) reject(new StatusFailure(response.statusCode, response));
          else resolve(response);
        },
      );
    });
  }

  /**
   * Hands the response over. The attempt stays in flight (load tracker, outlier detection,
   * deadline timer) until its body ends: read, dumped, destroyed, or cut by the deadline.
   */
  private deliver(): BalancedResponse {
    const response = this.response!;
    const peer = this.peer!;
    const outcome = this.outcome!;
    const body = response.body;
    const limit = this.ctx.maxResponseBodyBytes;
    if (limit !== Infinity) {
      const tooLarge = () =>
        new BodyTooLargeError({ service: this.svc.service, direction: 'response', limitBytes: limit, peer: peer.info });
      if (declaresTooLarge(this.method, response.statusCode, response.headers, limit)) {
        // Refused unread: dropping the body drops its connection, so none of it is downloaded.
        this.completeAttempt(errorOutcome(classifyFailure(tooLarge()), outcome.latencyMs));
        body.on('error', noop);
        body.destroy();
        throw tooLarge();
      }
      // Otherwise reading the body fails once it passes the limit, as with the deadline.
      limitResponseBody(body, limit, tooLarge);
    }
    let open = true;
    // 'end' comes before text()/json() resolve, so the counts are settled when the caller resumes;
    // 'close' covers destroy (dump of a large body, deadline, socket error).
    const done = () => {
      if (!open) return;
      open = false;
      this.completeAttempt(bodyOutcome(body.errored, outcome, outcome.latencyMs));
      this.finish();
    };
    body.once('end', done);
    body.once('close', done);
    return { statusCode: response.statusCode, headers: response.headers, body, peer: peer.info };
  }

  /** 429/503 with Retry-After: that peer is kept out of the picker (bounded), for every call. */
  private honourRetryAfter(peer: Peer, response: Dispatcher.ResponseData): number | undefined {
    const code = response.statusCode;
    if (code !== 429 && code !== 503) return undefined;
    const ms = parseRetryAfter(response.headers['retry-after'], Date.now());
    if (ms === undefined || ms <= 0) return undefined;
    this.svc.avoid(peer, Math.min(ms, this.ctx.maxRetryAfterMs));
    return ms;
  }

  private announceRetry(peer: Peer, attempt: number, error: unknown, statusCode: number | undefined): void {
    const events = this.ctx.events;
    if (!events.has('retry')) return;
    const base = { service: this.svc.service, peer: peer.info, attempt, error };
    events.emit('retry', statusCode === undefined ? base : { ...base, statusCode });
  }

  /**
   * Ends the call with `reason`: undici aborts what it is doing, and an attempt still waiting for
   * its response headers is settled at once, whatever undici does (a request stuck in a pool queue
   * would otherwise outlive its deadline).
   */
  private end(reason: unknown): void {
    this.signal.abort(reason);
    const abandon = this.abandonAttempt;
    this.abandonAttempt = undefined;
    abandon?.(reason);
  }

  /** The deadline passed (called by `ctx.deadlines`). */
  expire(): void {
    this.end(
      new DeadlineError({
        service: this.svc.service,
        timeoutMs: this.timeoutMs,
        peersTried: this.peersTried(),
        cause: this.lastError,
      }),
    );
  }

  private async waitForDiscovery(): Promise<void> {
    // Cold path (first call for a service): a real AbortSignal for the wait is fine here.
    const controller = new AbortController();
    const relay = () => controller.abort(this.signal.reason);
    this.signal.once('abort', relay);
    try {
      await this.svc.watch.waitUntilSeen(controller.signal);
    } catch (err) {
      const reason = this.signal.reason;
      if (reason instanceof AbortedError) throw reason;
      throw new NoPeersError(
        `no answer from the registry for "${this.svc.service}" within the ${this.timeoutMs} ms deadline`,
        { service: this.svc.service, peersTried: [], reason: 'no-answer', cause: this.svc.watch.error ?? reason ?? err },
      );
    } finally {
      this.signal.removeListener('abort', relay);
    }
  }

  private noPeers(): NoPeersError {
    return noPeersError(this.svc, this.peersTried());
  }

  /** Our abort, deadline, or an argument undici refused: never retried, never the peer's fault. */
  private localError(error: unknown): unknown {
    const signal = this.signal;
    if (signal.aborted && signal.reason !== undefined) return signal.reason;
    const code = (error as { code?: unknown } | null)?.code;
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
      this.svc.refused(this.peer!, error);
      return new InvalidOptionsError('request', (error as Error).message, { cause: error });
    }
    if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
      return new InvalidOptionsError('headers.content-length', 'does not match the body', { cause: error });
    }
    return error;
  }

  private deadline(): DeadlineError {
    const reason = this.signal.reason;
    if (reason instanceof DeadlineError) return reason;
    return new DeadlineError({
      service: this.svc.service,
      timeoutMs: this.timeoutMs,
      peersTried: this.peersTried(),
      cause: this.lastError,
    });
  }

  private upstream(error: unknown, reason: UpstreamError['reason']): UpstreamError {
    const tried = this.peersTried();
    const last = tried[tried.length - 1];
    const message = `request to "${this.svc.service}" failed after ${tried.length} attempt(s)${
      last ? ` (last peer ${last.id})` : ''
    }: ${(error as Error)?.message ?? String(error)}`;
    return new UpstreamError(message, { service: this.svc.service, peersTried: tried, cause: error, reason });
  }

  private peersTried(): PeerInfo[] {
    return this.tried.map((peer) => peer.info);
  }

  private finish(): void {
    this.ctx.deadlines.remove(this);
    if (this.onUserAbort !== undefined) this.options.signal?.removeEventListener('abort', this.onUserAbort);
  }
}

function noop(): void {}

/**
 * The abort signal of one call, in the shape undici also accepts besides `AbortSignal`: an
 * emitter of one `abort` event with `aborted` and `reason`. An `AbortController` per call was the
 * costliest allocation of the request path (EventTarget set-up), and only undici listens here.
 */
class CallSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | undefined;

  on(event: string, listener: () => void): this {
    if (event === 'abort') (this.listeners ??= []).push(listener);
    return this;
  }

  once(event: string, listener: () => void): this {
    // Fires at most once anyway: abort() drops every listener.
    return this.on(event, listener);
  }

  removeListener(event: string, listener: () => void): this {
    const listeners = this.listeners;
    if (event !== 'abort' || listeners === undefined) return this;
    const i = listeners.indexOf(listener);
    if (i >= 0) listeners.splice(i, 1);
    return this;
  }

  off(event: string, listener: () => void): this {
    return this.removeListener(event, listener);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners === undefined) return;
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        // Every listener must hear the abort; a throwing one is reported the way undici does.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
