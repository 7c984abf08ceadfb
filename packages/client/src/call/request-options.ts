import type { Readable } from 'node:stream';
import { InvalidOptionsError } from '@peerlb/registry';
import { CALLER_HEADER, MAX_CALLER_LENGTH, isValidCaller } from '@peerlb/rate-limit';

/** The header that carries the caller's identity to the peer, so servers can limit per caller too. */
export { CALLER_HEADER };

export type HeaderValue = string | number | readonly string[] | undefined;
export type RequestHeaders = Readonly<Record<string, HeaderValue>>;
export type QueryValue = string | number | boolean | readonly (string | number | boolean)[] | null | undefined;

/**
 * A request body. Strings and byte arrays can be sent again on another peer; a stream or async
 * iterable can be read only once, so a request carrying one is never retried.
 */
export type RequestBody = string | Uint8Array | Readable | AsyncIterable<Uint8Array> | null;

export interface RequestOptions {
  /** Service name as registered. */
  service: string;
  /** Path on the peer, starting with `/`; may carry a query string. */
  path: string;
  /** Default `GET`. */
  method?: string;
  headers?: RequestHeaders;
  body?: RequestBody;
  /** Added to the path's query string (values URL-encoded). */
  query?: Readonly<Record<string, QueryValue>>;
  /** Who is calling: the rate-limit key, sent to the peer in `x-peerlb-caller`. */
  caller?: string;
  /** Aborts the whole call (every attempt, and reading the body). */
  signal?: AbortSignal;
  /** Deadline for the whole call, body included; default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Declares a non-idempotent method safe to repeat after it may have reached a peer. */
  idempotent?: boolean;
  /** Affinity key for `consistentHash()` (ignored by other balancers). */
  key?: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// CR, LF and NUL would let a value forge extra headers or split the request.
const FORBIDDEN_IN_VALUE = /[\r\n\0]/;
const FORBIDDEN_IN_PATH = /[\u0000-\u0020\u007f]/;

export function validateMethod(method: unknown): string {
  if (method === undefined) return 'GET';
  if (typeof method !== 'string' || !TOKEN.test(method)) {
    throw new InvalidOptionsError('method', 'must be an HTTP method token');
  }
  if (method === 'CONNECT') throw new InvalidOptionsError('method', 'CONNECT is not supported');
  return method;
}

export function validatePath(path: unknown): string {
  if (typeof path !== 'string' || path.charCodeAt(0) !== 47 /* / */) {
    throw new InvalidOptionsError('path', 'must be a string starting with "/"');
  }
  if (FORBIDDEN_IN_PATH.test(path)) {
    throw new InvalidOptionsError('path', 'must not contain spaces or control characters (CR/LF included)');
  }
  return path;
}

export function validateCaller(caller: unknown, field = 'caller'): string {
  // The rule the server side applies when it reads the header: a caller it would not accept
  // must fail here, not be silently ignored there.
  if (!isValidCaller(caller)) {
    throw new InvalidOptionsError(field, `must be 1..${MAX_CALLER_LENGTH} visible ASCII characters (no space, CR or LF)`);
  }
  return caller;
}

function validateHeaderValue(name: string, value: HeaderValue): void {
  if (value === undefined || typeof value === 'number') return;
  if (typeof value === 'string') {
    if (FORBIDDEN_IN_VALUE.test(value)) {
      throw new InvalidOptionsError(`headers.${name}`, 'header values must not contain CR, LF or NUL');
    }
    return;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      if (typeof item !== 'string') throw new InvalidOptionsError(`headers.${name}`, 'must be a string or an array of strings');
      if (FORBIDDEN_IN_VALUE.test(item)) {
        throw new InvalidOptionsError(`headers.${name}`, 'header values must not contain CR, LF or NUL');
      }
    }
    return;
  }
  throw new InvalidOptionsError(`headers.${name}`, 'must be a string, a number or an array of strings');
}

let lastCallerHeaders: Readonly<Record<string, string>> | undefined;

export interface PreparedHeaders {
  /** The headers to send (the caller's own object when nothing had to be added). */
  readonly headers: RequestHeaders | undefined;
  /** The caller identity the request travels under, if any. */
  readonly caller: string | undefined;
}

/**
 * Validates header names and values before anything leaves the process, and puts the caller
 * identity into `x-peerlb-caller`. `caller` (explicit) beats a caller header the user set, which
 * beats the client's default caller. Allocates a new headers object only when it adds the header.
 */
export function prepareHeaders(
  headers: RequestHeaders | undefined,
  caller: string | undefined,
  defaultCaller: string | undefined,
): PreparedHeaders {
  let headerCaller: string | undefined;
  let callerKey: string | undefined;
  if (headers !== undefined) {
    if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
      throw new InvalidOptionsError('headers', 'must be an object of header names to values');
    }
    for (const name in headers) {
      if (!TOKEN.test(name)) throw new InvalidOptionsError(`headers.${JSON.stringify(name)}`, 'invalid header name');
      const value = headers[name];
      validateHeaderValue(name, value);
      if (name.length === CALLER_HEADER.length && name.toLowerCase() === CALLER_HEADER) {
        callerKey = name;
        if (typeof value === 'string') headerCaller = validateCaller(value, `headers.${name}`);
        else if (value !== undefined) throw new InvalidOptionsError(`headers.${name}`, 'must be a single string');
      }
    }
  }
  if (caller !== undefined) validateCaller(caller);
  const effective = caller ?? headerCaller ?? defaultCaller;
  if (effective === undefined || (effective === headerCaller && callerKey !== undefined)) {
    return { headers, caller: effective };
  }
  if (headers === undefined) {
    // The common case (no headers, a fixed caller): one shared, frozen object per caller in a row.
    if (lastCallerHeaders === undefined || lastCallerHeaders[CALLER_HEADER] !== effective) {
      lastCallerHeaders = Object.freeze({ [CALLER_HEADER]: effective });
    }
    return { headers: lastCallerHeaders, caller: effective };
  }
  const out: Record<string, HeaderValue> = {};
  for (const name in headers) if (name !== callerKey) out[name] = headers[name];
  out[CALLER_HEADER] = effective;
  return { headers: out, caller: effective };
}

/** Whether the body can be sent again to another peer. */
export function isReplayableBody(body: unknown): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}
