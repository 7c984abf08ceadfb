import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { BodyTooLargeError } from '../errors.js';
import type { Peer } from '../peers/peer.js';
import type { ServicePeers } from '../peers/service-peers.js';
import { Attempt } from '../call/attempt.js';
import { declaresTooLarge } from '../call/body-limits.js';
import { CallLoop, isTimeoutReason } from '../call/call-loop.js';
import type { CallContext, CallSpec } from '../call/context.js';
import { bodyOutcome, statusOutcome, type AttemptOutcome } from '../call/outcome.js';
import { withHeader } from './dispatch-headers.js';

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;

/** The handle the caller's handler holds: it follows whichever attempt is current. */
class OuterController implements Controller {
  aborted = false;
  paused = false;
  reason: Error | null = null;

  constructor(private readonly call: DispatchCall) {}

  get rawHeaders(): Controller['rawHeaders'] {
    return this.call.current?.controller?.rawHeaders;
  }

  get rawTrailers(): Controller['rawTrailers'] {
    return this.call.current?.controller?.rawTrailers;
  }

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.call.end(reason, isTimeoutReason(reason));
  }

  pause(): void {
    this.paused = true;
    this.call.current?.controller?.pause();
  }

  resume(): void {
    this.paused = false;
    this.call.current?.controller?.resume();
  }
}

const WAITING = 0;
/** The answer goes to the caller's handler. */
const FORWARDING = 1;
/** The answer was dropped (a retry went elsewhere, or the call had ended): read to its end, unseen. */
const DISCARDING = 2;

/** One attempt of a dispatched request: the handler undici calls for it on the peer's pool. */
class DispatchAttempt extends Attempt implements Handler {
  controller: Controller | undefined;
  private mode = WAITING;
  private headersOutcome: AttemptOutcome | undefined;
  private received = 0;

  constructor(
    private readonly call: DispatchCall,
    peer: Peer,
    number: number,
    now: number,
  ) {
    super(call, peer, number, now);
  }

  override abort(reason: unknown): void {
    super.abort(reason);
    this.controller?.abort(reason as Error);
  }

  onRequestStart(controller: Controller, context: unknown): void {
    this.controller = controller;
    if (this.aborted) return controller.abort(this.reason as Error);
    this.call.requestStarted(this, controller, context);
  }

  onRequestUpgrade(_controller: Controller, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    if (!this.call.answered(this, statusCode, headers)) return;
    this.done(statusOutcome(statusCode, headers, this.call.clock() - this.startedAt));
    this.call.upgraded(statusCode, headers, socket);
  }

  onResponseStarted(): void {
    if (this.mode !== DISCARDING) this.call.user.onResponseStarted?.();
  }

  onResponseStart(controller: Controller, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (this.mode === DISCARDING) return;
    if (statusCode < 200) {
      this.call.user.onResponseStart?.(this.call.outer, statusCode, headers, statusMessage);
      return;
    }
    const limit = this.call.ctx.maxResponseBodyBytes;
    if (limit !== Infinity && declaresTooLarge(this.call.spec.method, statusCode, headers, limit)) {
      // Refused unread, as client.request() does: aborting drops the connection, so none of it is downloaded.
      controller.abort(this.tooLarge());
      return;
    }
    if (!this.call.answered(this, statusCode, headers)) {
      this.mode = DISCARDING;
      return;
    }
    this.mode = FORWARDING;
    // The answer handed over is this attempt's: the caller's pause/resume follow it, even when a
    // hedge started after it.
    this.call.current = this;
    this.headersOutcome = statusOutcome(statusCode, headers, this.call.clock() - this.startedAt);
    this.call.user.onResponseStart?.(this.call.outer, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.mode !== FORWARDING) return;
    const limit = this.call.ctx.maxResponseBodyBytes;
    if (limit !== Infinity) {
      this.received += chunk.length;
      if (this.received > limit) {
        // The caller never sees bytes past the limit; the rest is not downloaded.
        this.mode = DISCARDING;
        this.done(bodyOutcome(this.tooLarge(), this.headersOutcome!));
        controller.abort(this.tooLarge());
        this.call.bodyFailed(this.tooLarge());
        return;
      }
    }
    this.call.user.onResponseData?.(this.call.outer, chunk);
  }

  onResponseEnd(_controller: Controller, trailers: IncomingHttpHeaders): void {
    if (this.mode !== FORWARDING) return;
    this.done(this.headersOutcome!);
    this.call.responseEnded(trailers);
  }

  onResponseError(_controller: Controller | undefined, error: Error): void {
    if (this.mode === DISCARDING) return;
    if (this.mode === FORWARDING) {
      // Failed while streaming the body: the caller already has the response.
      this.mode = DISCARDING;
      this.done(bodyOutcome(error, this.headersOutcome!));
      this.call.bodyFailed(error);
      return;
    }
    this.call.attemptFailed(this, error);
  }

  private tooLarge(): BodyTooLargeError {
    return new BodyTooLargeError({
      service: this.call.svc.service,
      direction: 'response',
      limitBytes: this.call.ctx.maxResponseBodyBytes,
      peer: this.peer.info,
    });
  }
}

/**
 * The `client.dispatcher()` front door over the call loop: each attempt is dispatched on the
 * peer's pool with its own handler; the caller's handler sees one request. An answer is handed
 * over once the loop keeps it; until then an attempt can still be retried elsewhere.
 */
export class DispatchCall extends CallLoop<DispatchAttempt> {
  readonly outer: OuterController = new OuterController(this);
  /** The attempt whose controller the caller's handler follows. */
  current: DispatchAttempt | undefined;
  private userStarted = false;
  private userDone = false;

  constructor(
    ctx: CallContext,
    svc: ServicePeers,
    spec: CallSpec,
    private readonly options: Dispatcher.DispatchOptions,
    readonly user: Handler & { onResponseStarted?: () => void },
    now: number,
  ) {
    super(ctx, svc, spec, now);
  }

  start(now: number): void {
    this.begin(now);
  }

  protected newAttempt(peer: Peer, number: number, now: number): DispatchAttempt {
    return new DispatchAttempt(this, peer, number, now);
  }

  send(attempt: DispatchAttempt): void {
    const transport = attempt.peer.transport;
    try {
      transport.dispatcher().dispatch({ ...this.options, origin: transport.origin, headers: this.headersFor(attempt) }, attempt);
    } catch (err) {
      attempt.onResponseError(undefined, err as Error);
    }
  }

  requestStarted(attempt: DispatchAttempt, controller: Controller, context: unknown): void {
    this.current = attempt;
    if (this.outer.paused) controller.pause();
    if (this.userStarted) return;
    this.userStarted = true;
    this.user.onRequestStart?.(this.outer, context);
  }

  upgraded(statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.finish();
    this.userDone = true;
    this.user.onRequestUpgrade?.(this.outer, statusCode, headers, socket);
  }

  responseEnded(trailers: IncomingHttpHeaders): void {
    this.finish();
    this.userDone = true;
    this.user.onResponseEnd?.(this.outer, trailers);
  }

  /** The delivered answer's body failed: the caller's handler hears it. */
  bodyFailed(error: Error): void {
    this.finish();
    this.failed(error);
  }

  protected failed(error: unknown): void {
    if (this.userDone) return;
    this.userDone = true;
    this.user.onResponseError?.(this.outer, error as Error);
  }

  private headersFor(attempt: DispatchAttempt): Dispatcher.DispatchOptions['headers'] {
    let headers = this.options.headers;
    if (!this.addsHeaders(attempt)) return headers;
    this.addHeaders(attempt, (name, value) => {
      headers = withHeader(headers, name, value);
    });
    return headers;
  }
}
