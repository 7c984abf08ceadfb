import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { Dispatcher } from 'undici';
import { ClosedError, InvalidOptionsError, isValidServiceName, PeerlbError } from '@peerlb/registry';
import { LOAD_REPORT_HEADER, type Outcome } from '../balancer/index.js';
import { classifyFailure, parseRetryAfter, RateLimitedError } from '../resilience/index.js';
import { BodyTooLargeError, NoPeersError, UpstreamError, type PeerInfo } from '../errors.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';
import { bodyOutcome, errorOutcome, isFailureStatus, noPeersError, pickPeer, statusOutcome, type PickState } from '../pipeline/attempt.js';
import { checkRequestBody, declaresTooLarge } from '../pipeline/body-limits.js';
import { CALLER_HEADER, isReplayableBody, validateCaller, type RequestBody } from '../pipeline/request-options.js';
import type { PipelineContext } from '../pipeline/request-pipeline.js';
import { asControllerHandler } from './legacy-handler.js';

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;

export interface BalancedDispatcherOptions {
  /** Caller identity for requests that carry no `x-peerlb-caller` header (default: the client's). */
  caller?: string;
}

/**
 * An undici `Dispatcher` that sends each request to a peer of a service picked by the client.
 * With a fixed service, the URL's origin is ignored (`http://anything/path` works); without one,
 * the URL's host name is the service (`http://users/v1/list`).
 *
 * Unlike `client.request()`, it only retries failures where nothing was sent (connect refused,
 * breaker refusal, pool closed), on another peer, and only for bodies that can be replayed: once
 * undici has started writing the request, the response (or error) belongs to the caller's
 * handler. The deadline is the caller's own (`signal` on `undici.request`/`fetch`); the client's
 * `timeoutMs` bounds only the wait for a first registry answer.
 */
export class BalancedDispatcher extends Dispatcher {
  private closedFlag = false;
  private readonly caller: string | undefined;

  constructor(
    private readonly ctx: PipelineContext,
    private readonly service: string | undefined,
    options: BalancedDispatcherOptions = {},
  ) {
    super();
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
    this.caller = options.caller === undefined ? ctx.defaultCaller : validateCaller(options.caller, 'caller');
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Handler): boolean {
    if (!handler || typeof handler !== 'object') throw new InvalidOptionsError('handler', 'must be an object');
    const user = asControllerHandler(handler);
    const call = new DispatchCall(this.ctx, options, user);
    try {
      if (this.closedFlag) throw new ClosedError('dispatcher');
      const service = this.service ?? serviceOf(options.origin);
      call.start(this.ctx.service(service), this.caller);
    } catch (err) {
      call.fail(err as Error);
    }
    return true;
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    // The pools belong to the client: closing a view of it only stops new requests.
    this.closedFlag = true;
    if (callback) queueMicrotask(callback);
    else return Promise.resolve();
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    this.closedFlag = true;
    const callback = typeof a === 'function' ? a : b;
    if (callback) queueMicrotask(callback);
    else return Promise.resolve();
  }
}

function serviceOf(origin: string | URL | undefined): string {
  if (origin === undefined) throw new InvalidOptionsError('origin', 'a URL is required: http://<service>/path');
  let host: string;
  try {
    host = (typeof origin === 'string' ? new URL(origin) : origin).hostname;
  } catch (err) {
    throw new InvalidOptionsError('origin', 'not a URL', { cause: err });
  }
  if (!isValidServiceName(host)) {
    throw new InvalidOptionsError('origin', `host "${host}" is not a service name: use http://<service>/path`);
  }
  return host;
}

/** The handle the caller's handler holds: it follows whichever attempt is current. */
class OuterController implements Controller {
  aborted = false;
  paused = false;
  reason: Error | null = null;

  constructor(private readonly call: DispatchCall) {}

  get rawHeaders(): Controller['rawHeaders'] {
    return this.call.attemptController?.rawHeaders;
  }

  get rawTrailers(): Controller['rawTrailers'] {
    return this.call.attemptController?.rawTrailers;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.call.attemptController?.abort(reason);
  }

  pause(): void {
    this.paused = true;
    this.call.attemptController?.pause();
  }

  resume(): void {
    this.paused = false;
    this.call.attemptController?.resume();
  }
}

/** One request through the dispatcher, across its (connect-phase) attempts. */
class DispatchCall {
  attemptController: Controller | undefined;
  private readonly outer = new OuterController(this);
  private svc: ServicePeers | undefined;
  private options: Dispatcher.DispatchOptions;
  private readonly replayable: boolean;
  private readonly tried: Peer[] = [];
  private readonly pickState: PickState;
  private attempts = 0;
  private userStarted = false;
  private finished = false;
  private lastError: Error | undefined;

  constructor(
    private readonly ctx: PipelineContext,
    options: Dispatcher.DispatchOptions,
    private readonly user: Handler,
  ) {
    // A one-shot iterator of header pairs could be read only once: flatten it for every attempt.
    const headers = options.headers;
    if (headers && !Array.isArray(headers) && typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
      const flat: unknown[] = [];
      for (const [name, value] of headers as Iterable<[string, string | string[] | undefined]>) {
        if (value !== undefined) flat.push(name, value);
      }
      options = { ...options, headers: flat as string[] };
    }
    this.options = options;
    this.replayable = isReplayableBody(options.body);
    this.pickState = { random: ctx.random, now: 0, exclude: undefined, key: undefined };
  }

  start(svc: ServicePeers, defaultCaller: string | undefined): void {
    this.svc = svc;
    const limit = this.ctx.maxRequestBodyBytes;
    if (limit !== Infinity) {
      // Strings and bytes over the limit are refused here; a stream is counted as it is sent.
      const body = checkRequestBody(this.options.body as RequestBody | undefined, limit, svc.service);
      if (body !== this.options.body) this.options = { ...this.options, body: body as Dispatcher.DispatchOptions['body'] };
    }
    const fromHeader = callerOf(this.options.headers);
    const caller = fromHeader ?? defaultCaller;
    if (fromHeader === undefined && caller !== undefined) {
      this.options = { ...this.options, headers: withHeader(this.options.headers, CALLER_HEADER, caller) };
    }
    if (this.ctx.limiter !== undefined) {
      const decision = this.ctx.limiter.take(caller ?? '', this.ctx.clock());
      if (!decision.ok) throw new RateLimitedError(caller ?? '', decision.retryAfterMs);
    }
    svc.counters.requests++;
    this.ctx.budget?.deposit(this.ctx.clock());
    if (svc.watch.hasBeenSeen) {
      this.next();
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.ctx.timeoutMs);
    timer.unref();
    svc.watch.waitUntilSeen(controller.signal).then(
      () => {
        clearTimeout(timer);
        this.next();
      },
      () =>
        this.fail(
          new NoPeersError(`no answer from the registry for "${svc.service}" within ${this.ctx.timeoutMs} ms`, {
            service: svc.service,
            peersTried: [],
            reason: 'no-answer',
            cause: svc.watch.error,
          }),
        ),
    );
  }

  /** Sends the next attempt, or fails the call when no peer is left. */
  private next(): void {
    const svc = this.svc!;
    if (this.outer.aborted) return this.fail(this.outer.reason ?? new Error('aborted'));
    if (svc.isClosed) return this.fail(new ClosedError('client'));
    this.pickState.now = this.ctx.clock();
    const peer = pickPeer(svc, this.pickState);
    if (peer === undefined) {
      if (this.tried.length === 0) return this.fail(noPeersError(svc, []));
      return this.fail(this.upstream(this.lastError, 'no-other-peer'));
    }
    this.attempts++;
    this.tried.push(peer);
    (this.pickState.exclude ??= new Set()).add(peer.id);
    peer.requests++;
    const attempt = new AttemptHandler(this, peer, this.ctx.clock());
    const breaker = peer.breakerForCall();
    if (breaker === undefined) {
      // The promise only feeds a breaker; without one nobody awaits it.
      attempt.send().catch(noop);
    } else {
      breaker.run(() => attempt.send()).catch((err: unknown) => attempt.refused(err));
    }
  }

  /** 429/503 with Retry-After: the peer is kept out of the picker that long (capped), as for request(). */
  honourRetryAfter(peer: Peer, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode !== 429 && statusCode !== 503) return;
    const ms = parseRetryAfter(headers['retry-after'], Date.now());
    if (ms !== undefined && ms > 0) this.svc!.avoid(peer, Math.min(ms, this.ctx.maxRetryAfterMs));
  }

  loadReport(peer: Peer, headerValue: unknown): void {
    this.svc!.loadReport(peer, headerValue, this.ctx.clock());
  }

  now(): number {
    return this.ctx.clock();
  }

  /** The response body limit (`maxResponseBodyBytes`), or undefined when there is none. */
  responseLimit(peer: Peer): { readonly bytes: number; readonly error: () => BodyTooLargeError } | undefined {
    const bytes = this.ctx.maxResponseBodyBytes;
    if (bytes === Infinity) return undefined;
    const service = this.svc!.service;
    return { bytes, error: () => new BodyTooLargeError({ service, direction: 'response', limitBytes: bytes, peer: peer.info }) };
  }

  get method(): string {
    return this.options.method;
  }

  dispatchTo(peer: Peer, handler: Handler): void {
    const options = { ...this.options, origin: peer.transport.origin };
    peer.transport.dispatcher().dispatch(options, handler);
  }

  /** An attempt failed before anything was sent: try another peer if allowed. */
  retryOrFail(peer: Peer, error: Error): void {
    this.lastError = error;
    // Arguments the peer's pool refused (a forbidden header...): it needs a fresh pool.
    this.svc!.refused(peer, error);
    const svc = this.svc!;
    if (this.outer.aborted || !this.replayable || classifyFailure(error).phase !== 'connect') return this.fail(error);
    if (this.attempts >= this.ctx.maxAttempts) return this.fail(this.upstream(error, 'attempts-exhausted'));
    if (this.ctx.budget !== undefined && !this.ctx.budget.tryWithdraw(this.ctx.clock())) {
      return this.fail(this.upstream(error, 'budget-exhausted'));
    }
    svc.counters.retries++;
    const events = this.ctx.events;
    if (events.has('retry')) events.emit('retry', { service: svc.service, peer: peer.info, attempt: this.attempts, error });
    this.next();
  }

  // --- forwarding to the caller's handler ----------------------------------------------------

  requestStarted(controller: Controller, context: unknown): void {
    this.attemptController = controller;
    if (this.outer.aborted) {
      controller.abort(this.outer.reason ?? new Error('aborted'));
      return;
    }
    if (this.outer.paused) controller.pause();
    if (this.userStarted) return;
    this.userStarted = true;
    this.user.onRequestStart?.(this.outer, context);
  }

  upgraded(statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.user.onRequestUpgrade?.(this.outer, statusCode, headers, socket);
  }

  responseStarted(): void {
    (this.user as { onResponseStarted?: () => void }).onResponseStarted?.();
  }

  responseStart(statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    this.user.onResponseStart?.(this.outer, statusCode, headers, statusMessage);
  }

  responseData(chunk: Buffer): void {
    this.user.onResponseData?.(this.outer, chunk);
  }

  responseEnd(trailers: IncomingHttpHeaders): void {
    this.finished = true;
    this.user.onResponseEnd?.(this.outer, trailers);
  }

  fail(error: Error): void {
    if (this.finished) return;
    this.finished = true;
    if (this.svc) this.svc.counters.failures++;
    this.user.onResponseError?.(this.outer, error);
  }

  private upstream(error: unknown, reason: UpstreamError['reason']): Error {
    const svc = this.svc!;
    const tried: PeerInfo[] = this.tried.map((p) => p.info);
    return new UpstreamError(
      `request to "${svc.service}" failed after ${tried.length} attempt(s): ${(error as Error)?.message ?? String(error)}`,
      { service: svc.service, peersTried: tried, cause: error, reason },
    );
  }

  feedback(peer: Peer, complete: (outcome: Outcome, now: number) => void, outcome: Outcome): void {
    const now = this.ctx.clock();
    complete(outcome, now);
    this.svc!.record(peer, outcome, now);
  }
}

/** Handles one attempt on one peer's pool; reports to the call. */
class AttemptHandler implements Handler {
  private sent = false;
  private headersOutcome: Outcome | undefined;
  private complete: ((outcome: Outcome, now: number) => void) | undefined;
  private settle: { resolve: () => void; reject: (reason: unknown) => void } | undefined;
  private done = false;
  private received = 0;
  private refusedBody = false;
  /** `maxResponseBodyBytes` for this attempt, looked up once rather than per chunk. */
  private readonly limit: ReturnType<DispatchCall['responseLimit']>;

  constructor(
    private readonly call: DispatchCall,
    private readonly peer: Peer,
    private readonly startedAt: number,
  ) {
    this.limit = call.responseLimit(peer);
  }

  /** Runs the attempt; the promise settles at the response headers (what the breaker judges). */
  send(): Promise<void> {
    this.complete = this.peer.tracker.start(this.startedAt);
    const judged = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    try {
      this.call.dispatchTo(this.peer, this);
    } catch (err) {
      this.onResponseError(undefined, err as Error);
    }
    return judged;
  }

  /** The breaker refused (or was shut down) before `send` ran: nothing was sent. */
  refused(err: unknown): void {
    if (this.complete !== undefined) return; // send() ran: the outcome is reported by the handler
    this.done = true;
    this.call.retryOrFail(this.peer, err instanceof Error ? err : new PeerlbError('PEERLB_BREAKER_OPEN', String(err)));
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.sent = true;
    this.call.requestStarted(controller, context);
  }

  onRequestUpgrade(_controller: Controller, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.call.upgraded(statusCode, headers, socket);
  }

  onResponseStarted(): void {
    this.call.responseStarted();
  }

  onResponseStart(controller: Controller, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    const limit = this.limit;
    if (limit !== undefined && statusCode >= 200 && declaresTooLarge(this.call.method, statusCode, headers, limit.bytes)) {
      // Refused unread, as client.request() does: aborting drops the connection, so none of it is downloaded.
      this.refusedBody = true;
      controller.abort(limit.error());
      return;
    }
    if (statusCode >= 200 && this.headersOutcome === undefined) {
      this.headersOutcome = statusOutcome(statusCode, this.call.now() - this.startedAt);
      this.call.loadReport(this.peer, headers[LOAD_REPORT_HEADER]);
      if (isFailureStatus(statusCode)) {
        this.settle?.reject({ statusCode });
        this.call.honourRetryAfter(this.peer, statusCode, headers);
      } else {
        this.settle?.resolve();
      }
    }
    this.call.responseStart(statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.refusedBody) return;
    const limit = this.limit;
    if (limit !== undefined) {
      this.received += chunk.length;
      if (this.received > limit.bytes) {
        // The caller never sees bytes past the limit; the rest is not downloaded.
        this.refusedBody = true;
        controller.abort(limit.error());
        return;
      }
    }
    this.call.responseData(chunk);
  }

  onResponseEnd(_controller: Controller, trailers: IncomingHttpHeaders): void {
    this.finishFeedback(this.headersOutcome ?? { kind: 'success', latencyMs: this.call.now() - this.startedAt });
    this.call.responseEnd(trailers);
  }

  onResponseError(_controller: Controller | undefined, error: Error): void {
    const latency = this.call.now() - this.startedAt;
    if (this.headersOutcome !== undefined) {
      // Failed while streaming the body: the caller already has the response.
      this.finishFeedback(bodyOutcome(error, this.headersOutcome, this.headersOutcome.latencyMs));
      this.call.fail(error);
      return;
    }
    this.settle?.reject(error);
    this.finishFeedback(errorOutcome(classifyFailure(error), latency));
    if (this.sent) this.call.fail(error);
    else this.call.retryOrFail(this.peer, error);
  }

  private finishFeedback(outcome: Outcome): void {
    if (this.done || this.complete === undefined) return;
    this.done = true;
    this.call.feedback(this.peer, this.complete, outcome);
  }

}

function callerOf(headers: Dispatcher.DispatchOptions['headers']): string | undefined {
  if (headers === null || headers === undefined) return undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === CALLER_HEADER) return String(headers[i + 1]);
    }
    return undefined;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === CALLER_HEADER && typeof value === 'string') return value;
  }
  return undefined;
}

function withHeader(
  headers: Dispatcher.DispatchOptions['headers'],
  name: string,
  value: string,
): Dispatcher.DispatchOptions['headers'] {
  if (headers === null || headers === undefined) return { [name]: value };
  if (Array.isArray(headers)) return [...(headers as string[]), name, value];
  return { ...(headers as Record<string, string | string[]>), [name]: value };
}

function noop(): void {}
