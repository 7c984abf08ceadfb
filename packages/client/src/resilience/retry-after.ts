import type { IncomingHttpHeaders } from 'node:http';

/**
 * How long a peer asked not to be sent more: a 429 or 503 with `Retry-After`, in ms from now;
 * undefined otherwise. The call core keeps that peer out of the picker this long (capped by
 * `retry.maxRetryAfterMs`), for every call, whether or not this call retries.
 */
export function retryAfterMs(statusCode: number, headers: IncomingHttpHeaders): number | undefined {
  if (statusCode !== 429 && statusCode !== 503) return undefined;
  const ms = parseRetryAfter(headers['retry-after'], Date.now());
  return ms !== undefined && ms > 0 ? ms : undefined;
}

/**
 * Parses a `Retry-After` header (delta-seconds or an HTTP-date) into milliseconds from `nowMs`
 * (a wall-clock reading, `Date.now()`, since HTTP-dates are wall-clock). Undefined when absent
 * or unparseable; never negative.
 */
export function parseRetryAfter(header: string | readonly string[] | undefined, nowMs: number): number | undefined {
  const value = typeof header === 'string' ? header : header?.[0];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  if (!/[a-z]/i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

