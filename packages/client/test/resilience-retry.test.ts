import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errors as undiciErrors, fetch, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { AbortedError, InvalidOptionsError } from '@peerlb/registry';
import {
  BreakerOpenError,
  classifyFailure,
  isIdempotentMethod,
  parseRetryAfter,
  retryAfterMs,
  RetryBudget,
  shouldRetry,
  type RetryQuestion,
} from '../src/resilience/index.js';

const withCode = (code: string, name = 'Error') => Object.assign(new Error(code), { code, name });

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('classifyFailure', () => {
  it.each([
    // code, phase, reason, peerFault
    ['ECONNREFUSED', 'connect', 'connect', true],
    ['ENOTFOUND', 'connect', 'connect', true],
    ['EHOSTUNREACH', 'connect', 'connect', true],
    ['ENETUNREACH', 'connect', 'connect', true],
    ['EAI_AGAIN', 'connect', 'connect', true],
    ['UND_ERR_CONNECT_TIMEOUT', 'connect', 'connect', true],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'connect', 'connect', true],
    ['UND_ERR_CLOSED', 'connect', 'connect', false],
    ['PEERLB_BREAKER_OPEN', 'connect', 'connect', false],
    ['UND_ERR_SOCKET', 'sent', 'reset', true],
    ['ECONNRESET', 'sent', 'reset', true],
    ['EPIPE', 'sent', 'reset', true],
    ['HPE_INVALID_CONSTANT', 'sent', 'reset', true],
    ['UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'sent', 'reset', true],
    ['UND_ERR_DESTROYED', 'sent', 'reset', false],
    ['UND_ERR_HEADERS_TIMEOUT', 'sent', 'timeout', true],
    ['UND_ERR_BODY_TIMEOUT', 'sent', 'timeout', true],
    ['ETIMEDOUT', 'sent', 'timeout', true],
    ['UND_ERR_ABORTED', 'local', 'aborted', false],
    ['ABORT_ERR', 'local', 'aborted', false],
    ['PEERLB_DEADLINE', 'local', 'aborted', false],
    ['UND_ERR_INVALID_ARG', 'local', 'aborted', false],
  ] as const)('%s -> %s / %s (peer fault: %s)', (code, phase, reason, peerFault) => {
    expect(classifyFailure(withCode(code))).toEqual({ phase, reason, peerFault, code });
  });

  it('knows undici 7 error classes', () => {
    expect(classifyFailure(new undiciErrors.ConnectTimeoutError()).phase).toBe('connect');
    expect(classifyFailure(new undiciErrors.SocketError('other side closed')).phase).toBe('sent');
    expect(classifyFailure(new undiciErrors.HeadersTimeoutError()).reason).toBe('timeout');
    expect(classifyFailure(new undiciErrors.BodyTimeoutError()).reason).toBe('timeout');
    expect(classifyFailure(new undiciErrors.RequestAbortedError()).phase).toBe('local');
    expect(classifyFailure(new undiciErrors.ClientClosedError()).phase).toBe('connect');
    expect(classifyFailure(new undiciErrors.ClientDestroyedError()).peerFault).toBe(false);
    expect(classifyFailure(new undiciErrors.InvalidArgumentError('bad')).phase).toBe('local');
  });

  it('classifies a real refused connection from undici request() and fetch()', async () => {
    const port = await closedPort();
    const fromRequest = await request(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(classifyFailure(fromRequest)).toMatchObject({ phase: 'connect', code: 'ECONNREFUSED' });
    // fetch wraps it: TypeError('fetch failed', { cause }).
    const fromFetch = await fetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(fromFetch).toBeInstanceOf(TypeError);
    expect(classifyFailure(fromFetch)).toMatchObject({ phase: 'connect', code: 'ECONNREFUSED' });
  });

  it('treats signal aborts (DOMException AbortError/TimeoutError) and AbortedError as local', () => {
    const ac = new AbortController();
    ac.abort();
    expect(classifyFailure(ac.signal.reason).phase).toBe('local');
    expect(classifyFailure(new DOMException('t', 'TimeoutError')).phase).toBe('local');
    expect(classifyFailure(new AbortedError()).phase).toBe('local');
  });

  it('looks into AggregateErrors of connect attempts (happy eyeballs)', () => {
    const agg = new AggregateError([withCode('ECONNREFUSED'), withCode('EHOSTUNREACH')], 'all failed');
    expect(classifyFailure(agg).phase).toBe('connect');
    const mixed = new AggregateError([withCode('ECONNREFUSED'), withCode('ECONNRESET')], 'mixed');
    expect(classifyFailure(mixed).phase).toBe('sent');
  });

  it('treats a breaker refusal as nothing sent and not the peer fault', () => {
    expect(classifyFailure(new BreakerOpenError('p1'))).toMatchObject({ phase: 'connect', peerFault: false });
  });

  it('assumes the worst about unknown errors: may have been sent, peer fault', () => {
    expect(classifyFailure(new Error('???'))).toEqual({ phase: 'sent', reason: 'reset', peerFault: true, code: undefined });
    expect(classifyFailure('a string')).toMatchObject({ phase: 'sent' });
    expect(classifyFailure(undefined)).toMatchObject({ phase: 'sent' });
  });
});

describe('isIdempotentMethod', () => {
  it.each([
    ['GET', true],
    ['HEAD', true],
    ['OPTIONS', true],
    ['TRACE', true],
    ['PUT', true],
    ['DELETE', true],
    ['get', true],
    ['POST', false],
    ['PATCH', false],
    ['CONNECT', false],
  ])('%s -> %s', (method, expected) => {
    expect(isIdempotentMethod(method)).toBe(expected);
  });
});

describe('shouldRetry', () => {
  const base: RetryQuestion = {
    phase: 'connect',
    method: 'POST',
    bodyReplayable: true,
    attempt: 1,
    maxAttempts: 3,
    timeLeftMs: 1000,
  };
  const ask = (q: Partial<RetryQuestion>) => shouldRetry({ ...base, ...q });

  it('retries connect-phase failures for any method', () => {
    expect(ask({ method: 'POST' })).toEqual({ retry: true });
    expect(ask({ method: 'PATCH' }).retry).toBe(true);
  });

  it('retries failures after sending only for idempotent requests', () => {
    expect(ask({ phase: 'sent', method: 'GET' }).retry).toBe(true);
    expect(ask({ phase: 'sent', method: 'POST' })).toEqual({ retry: false, why: 'not-idempotent' });
    expect(ask({ phase: 'sent', method: 'POST', idempotent: true }).retry).toBe(true);
    expect(ask({ phase: 'sent', method: 'GET', idempotent: false })).toEqual({ retry: false, why: 'not-idempotent' });
  });

  it('never retries our own aborts, exhausted attempts, an expired deadline or a spent body', () => {
    expect(ask({ phase: 'local', method: 'GET' })).toEqual({ retry: false, why: 'local' });
    expect(ask({ attempt: 3 })).toEqual({ retry: false, why: 'attempts' });
    expect(ask({ timeLeftMs: 0 })).toEqual({ retry: false, why: 'deadline' });
    expect(ask({ timeLeftMs: -5 })).toEqual({ retry: false, why: 'deadline' });
    expect(ask({ timeLeftMs: Number.NaN })).toEqual({ retry: false, why: 'deadline' });
    expect(ask({ bodyReplayable: false })).toEqual({ retry: false, why: 'body-not-replayable' });
  });

  it('retries 5xx only for idempotent methods, and only the retryable ones', () => {
    for (const statusCode of [500, 502, 503, 504]) {
      expect(ask({ phase: 'response', method: 'GET', statusCode }).retry).toBe(true);
      expect(ask({ phase: 'response', method: 'POST', statusCode })).toEqual({ retry: false, why: 'not-idempotent' });
    }
    for (const statusCode of [200, 404, 409, 501, 505]) {
      expect(ask({ phase: 'response', method: 'GET', statusCode })).toEqual({ retry: false, why: 'status' });
    }
    expect(ask({ phase: 'response', method: 'GET' })).toEqual({ retry: false, why: 'status' });
  });

  it('retries a 429 elsewhere for idempotent methods', () => {
    expect(ask({ phase: 'response', method: 'GET', statusCode: 429 })).toEqual({ retry: true });
    expect(ask({ phase: 'response', method: 'POST', statusCode: 429 }).retry).toBe(false);
  });
});

describe('retryAfterMs', () => {
  it('keeps a peer aside only for a 429 or 503 that sent Retry-After', () => {
    expect(retryAfterMs(429, { 'retry-after': '2' })).toBe(2000);
    expect(retryAfterMs(503, { 'retry-after': '1' })).toBe(1000);
    expect(retryAfterMs(500, { 'retry-after': '2' })).toBeUndefined();
    expect(retryAfterMs(429, {})).toBeUndefined();
    expect(retryAfterMs(429, { 'retry-after': '0' })).toBeUndefined();
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it('reads delta-seconds and HTTP-dates', () => {
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 0 ', now)).toBe(0);
    expect(parseRetryAfter(['7', '9'], now)).toBe(7000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', now)).toBe(0);
  });
  it('ignores what it cannot read', () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
    expect(parseRetryAfter('1.5', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
  });
});

describe('RetryBudget', () => {
  it('allows the floor (minPerSec x window) with no traffic, then refuses', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSec: 1, windowMs: 10_000 });
    expect(budget.balance(0)).toBe(10);
    for (let i = 0; i < 10; i++) expect(budget.tryWithdraw(i)).toBe(true);
    expect(budget.tryWithdraw(10)).toBe(false);
    expect(budget.balance(10)).toBe(0);
  });

  it('allows ratio x recent requests on top of the floor', () => {
    const budget = new RetryBudget({ ratio: 0.2, minPerSec: 0, windowMs: 10_000 });
    expect(budget.tryWithdraw(0)).toBe(false);
    for (let i = 0; i < 100; i++) budget.deposit(i);
    expect(budget.balance(100)).toBe(20);
    let granted = 0;
    while (budget.tryWithdraw(200)) granted++;
    expect(granted).toBe(20);
    // Five more requests earn exactly one more retry.
    for (let i = 0; i < 4; i++) budget.deposit(300);
    expect(budget.tryWithdraw(300)).toBe(false);
    budget.deposit(300);
    expect(budget.tryWithdraw(300)).toBe(true);
  });

  it('forgets requests and retries older than the window', () => {
    const budget = new RetryBudget({ ratio: 0.5, minPerSec: 0, windowMs: 1000 });
    for (let i = 0; i < 10; i++) budget.deposit(0);
    for (let i = 0; i < 5; i++) expect(budget.tryWithdraw(50)).toBe(true);
    expect(budget.tryWithdraw(50)).toBe(false);
    // Still inside the window at 950 ms.
    expect(budget.balance(950)).toBe(0);
    // After the window, both the requests and the retries are gone.
    expect(budget.balance(1100)).toBe(0);
    for (let i = 0; i < 4; i++) budget.deposit(1100);
    expect(budget.balance(1100)).toBe(2);
    expect(budget.balance(50_000)).toBe(0);
  });

  it('uses the defaults: ratio 0.2, 10 per second over 10 s', () => {
    const budget = new RetryBudget();
    expect(budget.balance(0)).toBe(100);
    for (let i = 0; i < 1000; i++) budget.deposit(1);
    expect(budget.balance(1)).toBe(300);
  });

  it('survives a clock that steps back', () => {
    const budget = new RetryBudget({ ratio: 1, minPerSec: 0, windowMs: 1000 });
    budget.deposit(5000);
    expect(budget.tryWithdraw(4000)).toBe(true);
    expect(budget.tryWithdraw(4000)).toBe(false);
  });

  it('validates its options', () => {
    expect(() => new RetryBudget({ ratio: -0.1 })).toThrow(InvalidOptionsError);
    expect(() => new RetryBudget({ minPerSec: -1 })).toThrow(/retryBudget\.minPerSec/);
    expect(() => new RetryBudget({ windowMs: 0 })).toThrow(/retryBudget\.windowMs/);
    expect(() => new RetryBudget({ ratio: Number.NaN }, 'client.retry.budget')).toThrow(/client\.retry\.budget\.ratio/);
  });
});
