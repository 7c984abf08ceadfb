import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { AbortedError, durationOption, InvalidOptionsError } from '@peerlb/registry';
import { isIdempotentMethod, RateLimitedError } from '../resilience/index.js';
import { hedgeForCall } from '../hedging/hedge-options.js';
import { admitDeadline } from '../call/inherited-deadline.js';
import { BodyTooLargeError, type PeerInfo } from '../errors.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';
import { Attempt } from '../call/attempt.js';
import { checkRequestBody, declaresTooLarge, limitResponseBody } from '../call/body-limits.js';
import { CallLoop, isTimeoutReason } from '../call/call-loop.js';
import type { CallContext, CallSpec } from '../call/context.js';
import { bodyOutcome, errorOutcome, statusOutcome } from '../call/outcome.js';
import {
  isReplayableBody,
  prepareHeaders,
  validateMethod,
  validatePath,
  type RequestBody,
  type RequestHeaders,
  type RequestOptions,
} from '../call/request-options.js';

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

/** `client.request()`: validate, rate limit, then the call loop; resolves with the answer. */
export function requestCall(ctx: CallContext, options: RequestOptions): Promise<BalancedResponse> {
  if (options === null || typeof options !== 'object') {
    return Promise.reject(new InvalidOptionsError('options', 'must be an object'));
  }
  try {
    const path = validatePath(options.path);
    const method = validateMethod(options.method);
    const prepared = prepareHeaders(options.headers, options.caller, ctx.defaultCaller);
    const timeoutMs = durationOption('timeoutMs', options.timeoutMs, ctx.timeoutMs);
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
    const replayable = isReplayableBody(options.body);
    const hedge = hedgeForCall(ctx.hedge, options.hedge, replayable && (options.idempotent ?? isIdempotentMethod(method)));
    if (signal?.aborted) throw new AbortedError(signal.reason);
    const deadline = admitDeadline(ctx, svc.service, timeoutMs);
    if (ctx.limiter !== undefined) {
      const decision = ctx.limiter.take(prepared.caller ?? '', ctx.clock());
      if (!decision.allowed) {
        ctx.telemetry?.rateLimited(svc.service);
        throw new RateLimitedError(prepared.caller ?? '', decision.retryAfterMs);
      }
    }
    const now = ctx.clock();
    const spec: CallSpec = {
      method,
      idempotent: options.idempotent,
      replayable,
      key: options.key,
      timeoutMs: deadline.timeoutMs,
      hedge,
      parentSignal: deadline.signal,
      inheritedDeadline: deadline.inherited,
      path,
    };
    return new RequestCall(ctx, svc, spec, options, path, prepared.headers, body, now).promise;
  } catch (err) {
    return Promise.reject(err);
  }
}

/** One attempt of `client.request()`: undici's answer lands here. */
class RequestAttempt extends Attempt {
  /** The undici callback of this attempt. */
  readonly callback = (err: Error | null, data: Dispatcher.ResponseData): void => this.call.onResponse(this, err, data);

  constructor(
    readonly call: RequestCall,
    peer: Peer,
    number: number,
    now: number,
  ) {
    super(call, peer, number, now);
  }
}

/** The `client.request()` front door over the call loop: undici `request()` per attempt, a promise per call. */
class RequestCall extends CallLoop<RequestAttempt> {
  readonly promise: Promise<BalancedResponse>;
  private resolve!: (response: BalancedResponse) => void;
  private reject!: (error: unknown) => void;
  private onUserAbort: (() => void) | undefined;

  constructor(
    ctx: CallContext,
    svc: ServicePeers,
    spec: CallSpec,
    private readonly options: RequestOptions,
    private readonly path: string,
    private readonly headers: RequestHeaders | undefined,
    /** `options.body`, or a stream counting towards `maxRequestBodyBytes`. */
    private readonly body: RequestBody | undefined,
    now: number,
  ) {
    super(ctx, svc, spec, now);
    this.promise = new Promise<BalancedResponse>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const signal = options.signal;
    if (signal !== undefined) {
      this.onUserAbort = () => this.end(new AbortedError(signal.reason), isTimeoutReason(signal.reason));
      signal.addEventListener('abort', this.onUserAbort, { once: true });
    }
    this.begin(now);
  }

  protected newAttempt(peer: Peer, number: number, now: number): RequestAttempt {
    return new RequestAttempt(this, peer, number, now);
  }

  send(attempt: RequestAttempt): void {
    try {
      attempt.peer.transport.dispatcher().request(
        {
          path: this.path,
          method: this.spec.method as Dispatcher.HttpMethod,
          headers: this.headersFor(attempt) as Dispatcher.RequestOptions['headers'],
          body: this.body as Dispatcher.RequestOptions['body'],
          query: this.options.query,
          signal: attempt as unknown as EventEmitter,
        },
        attempt.callback,
      );
    } catch (err) {
      this.attemptFailed(attempt, err);
    }
  }

  onResponse(attempt: RequestAttempt, err: Error | null, data: Dispatcher.ResponseData): void {
    if (err) return this.attemptFailed(attempt, err);
    if (this.answered(attempt, data.statusCode, data.headers)) {
      this.deliver(attempt, data);
    } else {
      // Dropped for a retry, or the call ended first: nobody reads it; free its connection.
      data.body.dump().catch(noop);
    }
  }

  protected failed(error: unknown): void {
    this.reject(error);
  }

  protected override finish(): void {
    super.finish();
    if (this.onUserAbort !== undefined) this.options.signal?.removeEventListener('abort', this.onUserAbort);
  }

  private headersFor(attempt: Attempt): RequestHeaders | undefined {
    if (!this.addsHeaders(attempt)) return this.headers;
    const out: Record<string, string | number | readonly string[] | undefined> = { ...this.headers };
    this.addHeaders(attempt, (name, value) => {
      out[name] = value;
    });
    return out;
  }

  /**
   * Hands the response over. The attempt stays in flight (load tracker, outlier detection,
   * deadline timer) until its body ends: read, dumped, destroyed, or cut by the deadline.
   */
  private deliver(attempt: RequestAttempt, response: Dispatcher.ResponseData): void {
    const peer = attempt.peer;
    const outcome = statusOutcome(response.statusCode, response.headers, this.ctx.clock() - attempt.startedAt);
    const body = response.body;
    const limit = this.ctx.maxResponseBodyBytes;
    if (limit !== Infinity) {
      const tooLarge = () =>
        new BodyTooLargeError({ service: this.svc.service, direction: 'response', limitBytes: limit, peer: peer.info });
      if (declaresTooLarge(this.spec.method, response.statusCode, response.headers, limit)) {
        // Refused unread: dropping the body drops its connection, so none of it is downloaded.
        attempt.done(errorOutcome(tooLarge(), outcome.latencyMs));
        body.on('error', noop);
        body.destroy();
        this.finish();
        this.svc.counters.failures++;
        this.reject(tooLarge());
        return;
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
      attempt.done(bodyOutcome(body.errored, outcome));
      this.finish();
    };
    // `on`, not `once`: `done` runs once anyway, and once() allocates a wrapper per listener.
    body.on('end', done);
    body.on('close', done);
    this.resolve({ statusCode: response.statusCode, headers: response.headers, body, peer: peer.info });
  }
}

function noop(): void {}
