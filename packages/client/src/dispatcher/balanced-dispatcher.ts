import { Dispatcher } from 'undici';
import { ClosedError, InvalidOptionsError, isValidServiceName } from '@peerlb/registry';
import { isIdempotentMethod, RateLimitedError } from '../resilience/index.js';
import { checkRequestBody } from '../call/body-limits.js';
import type { CallContext, CallSpec } from '../call/context.js';
import { admitDeadline } from '../call/inherited-deadline.js';
import { CALLER_HEADER, isReplayableBody, validateCaller, type RequestBody } from '../call/request-options.js';
import { DispatchCall } from './dispatch-call.js';
import { callerOf, replayableHeaders, withHeader } from './dispatch-headers.js';
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
 * Requests run through the same call loop as `client.request()`, with the same retry rule: until
 * an answer is handed to the caller's handler, a failure or a retryable status (5xx, 429) may be
 * retried on another peer, when the method (or a connect-phase failure) and the body allow it.
 * The deadline is the caller's own (`signal` on `undici.request`/`fetch`; an
 * `AbortSignal.timeout()` that fires before the headers counts against the hung peer); the
 * client's `timeoutMs` bounds only the wait for a first registry answer, and `attemptTimeoutMs`
 * applies as for `client.request()`.
 */
export class BalancedDispatcher extends Dispatcher {
  private closedFlag = false;
  private readonly caller: string | undefined;

  constructor(
    private readonly ctx: CallContext,
    private readonly service: string | undefined,
    options: BalancedDispatcherOptions = {},
  ) {
    super();
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options', 'must be an object');
    this.caller = options.caller === undefined ? ctx.defaultCaller : validateCaller(options.caller, 'caller');
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (!handler || typeof handler !== 'object') throw new InvalidOptionsError('handler', 'must be an object');
    const user = asControllerHandler(handler);
    try {
      if (this.closedFlag) throw new ClosedError('dispatcher');
      this.admit(options, user);
    } catch (err) {
      user.onResponseError?.(undefined as unknown as Dispatcher.DispatchController, err as Error);
    }
    return true;
  }

  /** Admission as for `client.request()`: body limit, caller (validated), rate limit; then the call loop. */
  private admit(options: Dispatcher.DispatchOptions, user: Dispatcher.DispatchHandler): void {
    const ctx = this.ctx;
    const svc = ctx.service(this.service ?? serviceOf(options.origin));
    let headers = replayableHeaders(options.headers);
    let body = options.body;
    if (ctx.maxRequestBodyBytes !== Infinity) {
      // Strings and bytes over the limit are refused here; a stream is counted as it is sent.
      body = checkRequestBody(body as RequestBody | undefined, ctx.maxRequestBodyBytes, svc.service) as typeof body;
    }
    const fromHeader = callerOf(headers);
    const caller = fromHeader ?? this.caller;
    if (fromHeader === undefined && caller !== undefined) headers = withHeader(headers, CALLER_HEADER, caller);
    // No deadline of its own (the caller's signal), unless one is inherited from a handled request.
    const deadline = admitDeadline(ctx, svc.service, Infinity);
    if (ctx.limiter !== undefined) {
      const decision = ctx.limiter.take(caller ?? '', ctx.clock());
      if (!decision.allowed) {
        ctx.telemetry?.rateLimited(svc.service);
        throw new RateLimitedError(caller ?? '', decision.retryAfterMs);
      }
    }
    const now = ctx.clock();
    const replayable = isReplayableBody(options.body);
    const spec: CallSpec = {
      method: options.method,
      idempotent: undefined,
      replayable,
      key: undefined,
      timeoutMs: deadline.timeoutMs,
      hedge: replayable && isIdempotentMethod(options.method) ? ctx.hedge : undefined,
      parentSignal: deadline.signal,
      inheritedDeadline: deadline.inherited,
      path: options.path,
    };
    const prepared = headers === options.headers && body === options.body ? options : { ...options, headers, body };
    new DispatchCall(ctx, svc, spec, prepared, user, now).start(now);
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
