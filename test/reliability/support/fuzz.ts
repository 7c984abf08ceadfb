import { afterAll, beforeAll, expect } from 'vitest';
import { isValidAddress, PeerlbError } from '@peerlb/registry';

/**
 * Collects unhandled rejections and uncaught exceptions while a fuzz file runs, and fails the file
 * if there was any. (Vitest reports them too, but only as a run-level error without the input.)
 */
export function trackUnhandled(): { readonly errors: unknown[] } {
  const errors: unknown[] = [];
  const onRejection = (reason: unknown) => errors.push(reason);
  const onException = (error: unknown) => errors.push(error);
  beforeAll(() => {
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
  });
  afterAll(async () => {
    // Let rejections from the last run surface.
    await new Promise((r) => setTimeout(r, 50));
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
    expect(errors).toEqual([]);
  });
  return { errors };
}

/** A peerlb error: a PeerlbError subclass with a stable PEERLB_ code. */
export function isTypedError(error: unknown): boolean {
  return error instanceof PeerlbError && typeof error.code === 'string' && /^PEERLB_[A-Z_]+$/.test(error.code);
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name} ${(error as { code?: unknown }).code ?? ''}: ${error.message}`;
  return String(error);
}

/**
 * Whether an origin handed to the transport is one a valid instance may have: http or https, an
 * IP literal or host name that passes validation, a port in 1..65535 spelled out.
 */
export function isDialableOrigin(origin: string): boolean {
  const m = /^(https?):\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})$/.exec(origin);
  if (!m) return false;
  const host = m[2]!.replace(/^\[(.*)\]$/, '$1');
  const port = Number(m[3]);
  return isValidAddress(host) && port >= 1 && port <= 65_535;
}
