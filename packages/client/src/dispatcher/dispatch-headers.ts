import type { Dispatcher } from 'undici';
import { CALLER_HEADER, validateCaller } from '../call/request-options.js';

type Headers = Dispatcher.DispatchOptions['headers'];

/** A one-shot iterator of header pairs can be read only once: flattened so every attempt can send it. */
export function replayableHeaders(headers: Headers): Headers {
  if (!headers || Array.isArray(headers) || typeof (headers as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    return headers;
  }
  const flat: string[] = [];
  for (const [name, value] of headers as Iterable<[string, string | string[] | undefined]>) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) flat.push(name, v);
    else flat.push(name, value);
  }
  return flat;
}

/**
 * The caller identity a dispatched request carries in `x-peerlb-caller`, validated with the rule
 * `client.request()` applies (and the serving side reads): a bad one is refused, not forwarded.
 */
export function callerOf(headers: Headers): string | undefined {
  if (headers === null || headers === undefined) return undefined;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = String(headers[i]);
      if (name.toLowerCase() === CALLER_HEADER) return validateCaller(headers[i + 1], `headers.${name}`);
    }
    return undefined;
  }
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === CALLER_HEADER) return validateCaller(value, `headers.${name}`);
  }
  return undefined;
}

/** `headers` plus one header, in the shape they came in (the caller's object is not changed). */
export function withHeader(headers: Headers, name: string, value: string): Headers {
  if (headers === null || headers === undefined) return { [name]: value };
  if (Array.isArray(headers)) return [...(headers as string[]), name, value];
  return { ...(headers as Record<string, string | string[]>), [name]: value };
}
