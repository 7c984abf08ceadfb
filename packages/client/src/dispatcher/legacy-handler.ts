import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';

type Handler = Dispatcher.DispatchHandler;
type Controller = Dispatcher.DispatchController;

/**
 * Presents a handler written against undici's older callback API (`onConnect`, `onHeaders`,
 * `onData`, `onComplete`, `onError` — still what undici 7's own `request()` and `fetch()` use)
 * as a handler of the controller API, so the dispatcher deals with one shape. The same
 * translation undici does internally (its WrapHandler, which it does not export).
 */
export function asControllerHandler(handler: Handler): Handler {
  return typeof handler.onRequestStart === 'function' ? handler : new LegacyHandler(handler);
}

class LegacyHandler implements Handler {
  constructor(private readonly handler: Handler) {}

  onRequestStart(controller: Controller, context: unknown): void {
    // undici passes the context as a second argument to onConnect (not in its types).
    (this.handler.onConnect as ((abort: (err?: Error) => void, context: unknown) => void) | undefined)?.call(
      this.handler,
      (reason?: Error) => controller.abort(reason ?? new Error('aborted')),
      context,
    );
  }

  onRequestUpgrade(controller: Controller, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.handler.onUpgrade?.(statusCode, rawOf(controller.rawHeaders, headers) as Buffer[], socket);
  }

  onResponseStarted(): void {
    (this.handler as { onResponseStarted?: () => void }).onResponseStarted?.();
  }

  onResponseStart(controller: Controller, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    const keepGoing = this.handler.onHeaders?.(
      statusCode,
      rawOf(controller.rawHeaders, headers) as Buffer[],
      () => controller.resume(),
      statusMessage ?? '',
    );
    if (keepGoing === false) controller.pause();
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.handler.onData?.(chunk) === false) controller.pause();
  }

  onResponseEnd(controller: Controller, trailers: IncomingHttpHeaders): void {
    this.handler.onComplete?.(rawOf(controller.rawTrailers, trailers) as string[]);
  }

  onResponseError(_controller: Controller, error: Error): void {
    if (typeof this.handler.onError !== 'function') throw error;
    this.handler.onError(error);
  }
}

/** The raw header list when undici kept it (exact names, duplicates), else rebuilt from the object. */
function rawOf(raw: Controller['rawHeaders'], headers: IncomingHttpHeaders): Buffer[] | string[] {
  if (Array.isArray(raw)) return raw;
  const out: Buffer[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
    else out.push(Buffer.from(name, 'latin1'), Buffer.from(String(value), 'latin1'));
  }
  return out;
}
