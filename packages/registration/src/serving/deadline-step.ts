import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_MAX_TIMEOUT_MS, RequestDeadline, TIMEOUT_HEADER, parseTimeout, runWithDeadline } from '@peerlb/deadline';
import { durationOption, InvalidOptionsError } from '@peerlb/registry';
import { DEADLINE_EXPIRED_CODE } from '../errors.js';
import type { ServingHandler, ServingStep } from './serving-step.js';

export interface DeadlineOptions {
  /** Budgets above this are clamped to it (a caller cannot make this instance wait forever). Default 300 000 ms. */
  maxMs?: number;
  /**
   * Budget of a request that carries no `x-peerlb-timeout` (e.g. a gateway's requests from
   * outside). Default: none, such requests run without a deadline.
   */
  defaultMs?: number;
}

/** What the deadline step saw, counted since the instance started. */
export interface DeadlineStats {
  /** Requests that had a budget (from the header, or `defaultMs`). */
  withDeadline: number;
  /** Answered 504 at once without running the handler: no time was left when they reached it. */
  expired: number;
  /** The caller's connection closed before the answer was finished (the caller gave up). */
  cancelled: number;
  /**
   * Answers finished after their budget was spent: work nobody was waiting for any more (a 504 a
   * handler writes when its deadline signal fires counts here too: it finishes just after).
   */
  late: number;
}

/** The step and its counters. */
export interface DeadlineStep extends ServingStep {
  stats(): DeadlineStats;
}

/**
 * Reads the caller's remaining time (`x-peerlb-timeout`) and runs the rest of the request inside
 * a `RequestDeadline` (AsyncLocalStorage), so the handler sees it through `currentDeadline()` and
 * every peerlb client call it makes inherits it. A request with no time left is answered
 * 504 with `code: PEERLB_DEADLINE_EXPIRED` and never reaches the handler. The budget also ends
 * when the caller's connection closes first: the request's signal aborts, and calls made for it
 * stop.
 *
 * Time a request spends before Node parses it (in socket buffers while the event loop is busy) is
 * invisible here, so the budget counts from the moment the request reaches this step; steps
 * after this one run synchronously, so nothing queues between it and the handler.
 */
export function deadlineStep(options: DeadlineOptions = {}, field = 'serving.deadline'): DeadlineStep {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError(field, 'must be true, false or an object');
  const maxMs = durationOption(`${field}.maxMs`, options.maxMs, DEFAULT_MAX_TIMEOUT_MS);
  const defaultMs =
    options.defaultMs === undefined ? undefined : Math.min(maxMs, durationOption(`${field}.defaultMs`, options.defaultMs, 0));
  const stats: DeadlineStats = { withDeadline: 0, expired: 0, cancelled: 0, late: 0 };

  return {
    name: 'deadline',
    handle(req: IncomingMessage, res: ServerResponse, next: ServingHandler) {
      const ms = parseTimeout(req.headers[TIMEOUT_HEADER], maxMs) ?? defaultMs;
      if (ms === undefined) return next(req, res);
      stats.withDeadline++;
      if (ms <= 0) {
        stats.expired++;
        answerExpired(res);
        return undefined;
      }
      const deadline = new RequestDeadline(ms);
      res.once('close', () => {
        if (!res.writableFinished) {
          stats.cancelled++;
          deadline.cancel();
        } else if (deadline.expiresAt < performance.now()) {
          stats.late++;
        }
        deadline.dispose();
      });
      return runWithDeadline(deadline, () => next(req, res));
    },
    stats: () => ({ ...stats }),
  };
}

function answerExpired(res: ServerResponse): void {
  const body = `{"error":"deadline exceeded","code":"${DEADLINE_EXPIRED_CODE}"}`;
  res.writeHead(504, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
