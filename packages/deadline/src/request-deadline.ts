/**
 * The time budget of one request being served: when it runs out (on this process's monotonic
 * clock, `performance.now()`), and an `AbortSignal` that fires then, or earlier when the request
 * is cancelled (its caller went away).
 *
 * The signal and its timer are made on first use of `signal`: most handlers only ever ask for the
 * time left, and a served request should not pay for a timer nobody listens to.
 */
export class RequestDeadline {
  /** `performance.now()` reading at which the budget is spent. */
  readonly expiresAt: number;
  #controller: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Set by `cancel` before any signal exists, so a signal made later starts aborted. */
  #cancelled: { reason: unknown } | undefined;
  #disposed = false;

  /** A budget of `timeLeftMs` from `now` (negative or NaN counts as none left). */
  constructor(timeLeftMs: number, now: number = performance.now()) {
    this.expiresAt = now + (timeLeftMs > 0 ? timeLeftMs : 0);
  }

  /** Milliseconds left, never negative. */
  timeLeftMs(now: number = performance.now()): number {
    const left = this.expiresAt - now;
    return left > 0 ? left : 0;
  }

  /** The budget is spent, or the request was cancelled. */
  get expired(): boolean {
    return this.#cancelled !== undefined || this.expiresAt <= performance.now();
  }

  /**
   * Aborts when the budget runs out (reason: a `TimeoutError` DOMException, as
   * `AbortSignal.timeout` gives) or when `cancel` is called. Pass it to whatever the handler
   * waits on; calls made through a peerlb client inside the request already follow it.
   */
  get signal(): AbortSignal {
    if (this.#controller !== undefined) return this.#controller.signal;
    const controller = new AbortController();
    this.#controller = controller;
    if (this.#cancelled !== undefined) {
      controller.abort(this.#cancelled.reason);
    } else {
      const left = this.timeLeftMs();
      if (left <= 0) controller.abort(timeoutReason());
      else if (!this.#disposed) {
        // setTimeout may fire a fraction of a millisecond early: aim at the next whole millisecond.
        this.#timer = setTimeout(() => this.#expire(), Math.ceil(left));
        this.#timer.unref();
      }
    }
    return controller.signal;
  }

  /** Ends the budget now: the caller gave up (its connection closed before the answer). */
  cancel(reason: unknown = new DOMException('the caller cancelled the request', 'AbortError')): void {
    if (this.#cancelled !== undefined) return;
    this.#cancelled = { reason };
    this.#clearTimer();
    this.#controller?.abort(reason);
  }

  /** The request is over: releases the timer. The signal keeps whatever state it had. */
  dispose(): void {
    this.#disposed = true;
    this.#clearTimer();
  }

  #expire(): void {
    this.#timer = undefined;
    const left = this.expiresAt - performance.now();
    if (left > 0) {
      // Fired early (timers round): aim again rather than abort before the budget is spent.
      this.#timer = setTimeout(() => this.#expire(), Math.ceil(left));
      this.#timer.unref();
      return;
    }
    this.#controller?.abort(timeoutReason());
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

function timeoutReason(): DOMException {
  return new DOMException('the request deadline passed', 'TimeoutError');
}
