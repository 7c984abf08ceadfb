import type { IncomingMessage } from 'node:http';
import type { Client } from '@peerlb/client';

/** What a route answers; the runtime adds `servedBy` and the `x-served-by` header. */
export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  body: Record<string, unknown>;
}

export interface RouteContext {
  readonly req: IncomingMessage;
  readonly url: URL;
  /** Capture groups of the route's path pattern. */
  readonly params: readonly string[];
  /** The caller the request came from (`x-peerlb-caller`), if any. */
  readonly caller: string | undefined;
  readBody(): Promise<string>;
}

export interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: RegExp;
  handle(ctx: RouteContext): Promise<Reply> | Reply;
}

/** A service is its routes, built once per process around that process's client. */
export interface ServiceDeps {
  readonly client: Client;
  readonly userRatePerSec: number;
}

export type ServiceFactory = (deps: ServiceDeps) => readonly Route[];

/** A client error a route reports as is (bad input, unknown product). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** An upstream answered, but not with a 2xx. */
export class UpstreamStatusError extends Error {
  constructor(
    readonly service: string,
    readonly statusCode: number,
    readonly upstream: unknown,
  ) {
    super(`${service} answered ${statusCode}`);
    this.name = 'UpstreamStatusError';
  }
}

export interface UpstreamAnswer<T> {
  data: T;
  /** The instance that answered: what a user sees of the balancing. */
  servedBy: string;
  /** Every instance on the way, callee's own upstreams included. */
  via: Record<string, string>;
}

export interface CallOptions {
  service: string;
  path: string;
  method?: 'GET' | 'POST';
  /** Rate-limit key and `x-peerlb-caller`: the calling service, or the end user at the gateway. */
  caller?: string;
  json?: unknown;
}

/**
 * One call to another service through the client's balancer. Every body is read to the end, also
 * for errors, so the peer's socket is reused.
 */
export async function callService<T>(client: Client, options: CallOptions): Promise<UpstreamAnswer<T>> {
  const res = await client.request({
    service: options.service,
    path: options.path,
    method: options.method ?? 'GET',
    ...(options.caller !== undefined ? { caller: options.caller } : {}),
    ...(options.json !== undefined
      ? { body: JSON.stringify(options.json), headers: { 'content-type': 'application/json' } }
      : {}),
  });
  const text = await res.body.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text.slice(0, 200);
  }
  if (res.statusCode < 200 || res.statusCode >= 300) throw new UpstreamStatusError(options.service, res.statusCode, parsed);
  const data = (parsed ?? {}) as T & { servedBy?: unknown; via?: unknown };
  const servedBy = typeof data.servedBy === 'string' ? data.servedBy : res.peer.id;
  const via: Record<string, string> = { [options.service]: servedBy };
  if (data.via !== null && typeof data.via === 'object') {
    for (const [k, v] of Object.entries(data.via as Record<string, unknown>)) if (typeof v === 'string') via[k] = v;
  }
  return { data, servedBy, via };
}

/** Turns a failure into an answer: peerlb's typed errors by their stable `code`. */
export function errorReply(err: unknown): Reply {
  if (err instanceof HttpError) return { status: err.status, body: { error: err.message } };
  if (err instanceof UpstreamStatusError) {
    // A 4xx of the callee is the user's problem and is passed on, and so is a 504 (the request's
    // deadline passed down there: it passed here too); anything else is ours.
    const passOn = (err.statusCode >= 400 && err.statusCode < 500) || err.statusCode === 504;
    return {
      status: passOn ? err.statusCode : 502,
      body: { error: 'upstream_status', service: err.service, upstreamStatus: err.statusCode, upstream: err.upstream },
    };
  }
  const e = err as { code?: unknown; message?: unknown; retryAfterMs?: unknown; caller?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  switch (e?.code) {
    case 'PEERLB_RATE_LIMITED': {
      const retryAfterMs = typeof e.retryAfterMs === 'number' ? e.retryAfterMs : 1000;
      return {
        status: 429,
        headers: { 'retry-after': String(Math.max(1, Math.ceil(retryAfterMs / 1000))) },
        body: { error: 'rate_limited', caller: e.caller, retryAfterMs, message },
      };
    }
    case 'PEERLB_NO_PEERS':
      return { status: 503, body: { error: 'no_peers', message } };
    case 'PEERLB_DEADLINE':
      return { status: 504, body: { error: 'deadline', message } };
    case 'PEERLB_UPSTREAM':
      return { status: 502, body: { error: 'upstream', message } };
    default:
      return { status: 500, body: { error: 'internal', message } };
  }
}

/** Query parameter as a positive integer within bounds, or the default. */
export function intParam(url: URL, name: string, fallback: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new HttpError(400, `${name} must be an integer in ${min}..${max}`);
  return n;
}
