import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { InvalidOptionsError } from '@peerlb/registry';
import { BodyTooLargeError } from '../errors.js';
import type { RequestBody } from './request-options.js';

/**
 * Checks a request body before anything is sent: its type (a string, bytes, a stream or an async
 * iterable; anything else would fail half-way through the upload) and `maxRequestBodyBytes`. A
 * string or bytes over the limit are refused; a stream or async iterable is passed on through a
 * counter that fails the upload once it passes the limit (such a body is never retried, so it is
 * read once).
 */
export function checkRequestBody(body: RequestBody | undefined, limit: number, service: string): RequestBody | undefined {
  if (body === undefined || body === null) return body;
  const tooLarge = () => new BodyTooLargeError({ service, direction: 'request', limitBytes: limit });
  if (typeof body === 'string') {
    // Cheap bound first: UTF-8 needs at most 3 bytes per UTF-16 unit.
    if (limit !== Infinity && body.length * 3 > limit && Buffer.byteLength(body) > limit) throw tooLarge();
    return body;
  }
  if (body instanceof Uint8Array) {
    if (body.byteLength > limit) throw tooLarge();
    return body;
  }
  if (typeof (body as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] !== 'function') {
    throw new InvalidOptionsError('body', 'must be a string, bytes (Uint8Array), a Readable or an async iterable');
  }
  return limit === Infinity ? body : countedUpload(body as AsyncIterable<Uint8Array | string>, limit, tooLarge);
}

async function* countedUpload(
  source: AsyncIterable<Uint8Array | string>,
  limit: number,
  tooLarge: () => BodyTooLargeError,
): AsyncIterable<Uint8Array> {
  let sent = 0;
  let ended = false;
  const chunks = source[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await chunks.next();
      if (next.done === true) {
        ended = true;
        return;
      }
      const chunk: unknown = next.value;
      if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
        throw new InvalidOptionsError('body', 'chunks of a streamed body must be strings or bytes');
      }
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      sent += bytes.byteLength;
      if (sent > limit) throw tooLarge();
      yield bytes;
    }
  } finally {
    // Leaving early (limit, abort) ends the caller's stream too, but without waiting for it:
    // undici fetch's own body iterator never settles its return() once its request has failed,
    // which would leave the call hanging (a for-await loop would wait for it).
    if (!ended) void Promise.resolve(chunks.return?.()).catch(noop);
  }
}

/** True when the answer announces (`Content-Length`) a body larger than `limit`. */
export function declaresTooLarge(method: string, statusCode: number, headers: IncomingHttpHeaders, limit: number): boolean {
  if (limit === Infinity || method === 'HEAD' || statusCode === 204 || statusCode === 304) return false;
  const declared = Number(headers['content-length']);
  return Number.isFinite(declared) && declared > limit;
}

/**
 * Fails `body` with `error()` once more than `limit` bytes have reached it, before the excess
 * reaches the reader. Hooks the stream's `push`, which the transport calls for every chunk it
 * receives, so nothing is read on the caller's behalf and flow control is kept; bytes already
 * buffered when this is called count too. Destroying the body aborts its request (undici), so the
 * rest is never downloaded.
 */
export function limitResponseBody(body: Readable, limit: number, error: () => Error): void {
  let received = body.readableLength;
  let exceeded = false;
  const fail = () => {
    exceeded = true;
    // Like undici's own aborts: a body nobody reads must not turn the error into a crash.
    body.on('error', noop);
    body.destroy(error());
  };
  if (received > limit) return fail();
  const push = body.push.bind(body);
  body.push = (chunk: unknown, encoding?: BufferEncoding) => {
    if (exceeded) return false;
    if (chunk !== null) {
      received += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : (chunk as Uint8Array).byteLength;
      if (received > limit) {
        exceeded = true;
        // Not from inside the transport's push: destroying aborts the request it is delivering.
        queueMicrotask(fail);
        return false;
      }
    }
    return push(chunk, encoding);
  };
}

function noop(): void {}
