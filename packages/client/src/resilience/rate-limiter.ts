import { PeerlbError } from '@peerlb/registry';

const MAX_CALLER_IN_MESSAGE = 64;

/** A caller went over its rate limit; no request was sent. Retry after `retryAfterMs`. */
export class RateLimitedError extends PeerlbError {
  readonly retryAfterMs: number;
  readonly caller: string;

  constructor(caller: string, retryAfterMs: number, options?: { cause?: unknown }) {
    const shown = caller.length > MAX_CALLER_IN_MESSAGE ? `${caller.slice(0, MAX_CALLER_IN_MESSAGE)}...` : caller;
    super(
      'PEERLB_RATE_LIMITED',
      `caller ${JSON.stringify(shown)} is over its rate limit; retry after ${retryAfterMs} ms`,
      options,
    );
    this.retryAfterMs = retryAfterMs;
    this.caller = caller;
  }
}
