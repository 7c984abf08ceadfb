import { afterAll, beforeAll, expect } from 'vitest';
import { undiciPoolFactory, type Client, type TransportFactory } from '@peerlb/client';
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

/**
 * The client side of "never dial an invalid peer": a transport that records every origin the
 * client hands it and sends every connection to the one local peer whatever the origin says (so a
 * valid but unknown host name is never looked up), and a check of one request on a client built
 * with it: an answer or a typed error, and no invalid origin dialled so far.
 */
export function dialRecorder(peerPort: number) {
  const dialled: string[] = [];
  const outcomes = { answered: 0, typed: 0 };
  const transportFactory: TransportFactory = (origin, options) => {
    dialled.push(origin);
    return undiciPoolFactory(`http://127.0.0.1:${peerPort}`, options);
  };
  async function requestOnce(client: Client, service: string, onAnswer?: (statusCode: number) => void): Promise<void> {
    try {
      const res = await client.request({ service, path: '/' });
      onAnswer?.(res.statusCode);
      await res.body.text();
      outcomes.answered++;
    } catch (err) {
      if (!isTypedError(err)) throw new Error(`untyped error: ${describeError(err)}`);
      outcomes.typed++;
    }
    const bad = dialled.filter((o) => !isDialableOrigin(o));
    if (bad.length > 0) throw new Error(`dialled invalid origins ${JSON.stringify(bad)}`);
  }
  return { transportFactory, outcomes, requestOnce };
}
