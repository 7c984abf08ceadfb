import { inspect } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, InvalidOptionsError, type Client, type RequestOptions } from '@peerlb/client';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { describeError, isTypedError, trackUnhandled } from './support/fuzz.js';
import { MODE } from './support/mode.js';
import { startPeer, type Peer } from './support/servers.js';

// Paths, methods, headers, query strings, callers and bodies a caller might pass: a request is
// either sent as given (and the peer sees no header it was not given) or refused with a typed
// error before anything leaves -- never a crash, never an unhandled rejection.

const unhandled = trackUnhandled();
let peer: Peer;
let registry: MemoryRegistry;
let client: Client;
/** Raw header names of every request the peer received, in order. */
const received: string[][] = [];

beforeAll(async () => {
  peer = await startPeer((req, res) => {
    received.push(req.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()));
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  registry = new MemoryRegistry({ logger: silentLogger });
  await registry.register({ id: 'api-1', service: 'api', address: '127.0.0.1', port: peer.port }, { ttlMs: 600_000 });
  await registry.heartbeat('api-1');
  client = createClient({
    registry,
    logger: silentLogger,
    timeoutMs: 2_000,
    retry: false,
    breaker: false,
    outlier: false,
  });
});
afterAll(async () => {
  await client?.close();
  await registry?.close();
  await peer?.close();
});

const nasty = fc.constantFrom('\r\n', '\n', '\r', '\u0000', ' ', '\t', '\u007f', 'é', '\u2028', '\ud800', '%0d%0a', '"', ':');
const withNasty = (base: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 4, arbitrary: base },
    { weight: 1, arbitrary: fc.tuple(base, nasty, base).map(([a, n, b]) => `${a}${n}${b}`) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  );
const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const headerValue = fc.oneof(
  withNasty(fc.stringMatching(/^[\x20-\x7e]{0,20}$/)),
  fc.integer(),
  fc.array(withNasty(fc.stringMatching(/^[a-z0-9]{0,8}$/)), { maxLength: 3 }),
  fc.anything(),
);

const requestArb: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    path: fc.oneof(
      { weight: 4, arbitrary: fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)) },
      { weight: 1, arbitrary: withNasty(fc.constant('/x')) },
      { weight: 1, arbitrary: fc.anything() },
    ),
    method: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'get') },
      { weight: 1, arbitrary: withNasty(fc.constantFrom('GET', 'X-CUSTOM')) },
      { weight: 1, arbitrary: fc.constantFrom('CONNECT', '', 'TRACE', 123) },
    ),
    headers: fc.oneof(
      { weight: 4, arbitrary: fc.dictionary(withNasty(token), headerValue, { maxKeys: 4 }) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(
          { host: 'evil' },
          { 'content-length': '5' },
          { 'transfer-encoding': 'chunked' },
          { connection: 'upgrade', upgrade: 'h2c' },
          { 'keep-alive': 'timeout=5' },
          { expect: '100-continue' },
          { Host: 'a', host: 'b' },
        ),
      },
      { weight: 1, arbitrary: fc.anything() },
    ),
    query: fc.oneof(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))), fc.anything()),
    caller: fc.oneof(token, withNasty(token), fc.anything()),
    body: fc.oneof(fc.string(), fc.uint8Array({ maxLength: 64 }), fc.constant(null), fc.anything()),
    timeoutMs: fc.oneof(fc.constantFrom(1_000, 2_000), fc.anything()),
    idempotent: fc.oneof(fc.boolean(), fc.anything()),
    key: fc.oneof(fc.string(), fc.anything()),
  },
  { requiredKeys: [] },
);

/** Fails the run instead of hanging the suite when a call never settles. */
function hangGuard<T>(promise: Promise<T>, o: unknown): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`never settled: ${inspect(o)}`));
    }, 10_000);
  });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

/** Headers undici or Node may add on their own, and peerlb's own: the caller and the call's time left. */
const TRANSPORT_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'x-peerlb-caller',
  'x-peerlb-timeout',
  'keep-alive',
  'expect',
]);

describe('fuzzing client.request()', () => {
  it('sent as given, or refused with a typed error and nothing sent', async () => {
    const outcomes = { answered: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(requestArb, async (o) => {
        const before = peer.requests;
        const seenBefore = received.length;
        let answered = false;
        try {
          const res = await hangGuard(client.request({ service: 'api', ...o } as unknown as RequestOptions), o);
          await hangGuard(res.body.text(), o);
          answered = true;
        } catch (err) {
          if (!isTypedError(err)) throw new Error(`untyped error ${describeError(err)} for ${inspect(o)}`);
          if (err instanceof InvalidOptionsError && peer.requests !== before) {
            throw new Error(`refused (${err.message}) but the peer got a request: ${inspect(o)}`);
          }
        }
        if (answered) {
          outcomes.answered++;
          // No header the caller did not give (no split header, no smuggled line).
          const given = new Set(
            o.headers !== null && typeof o.headers === 'object' ? Object.keys(o.headers).map((k) => k.toLowerCase()) : [],
          );
          for (const names of received.slice(seenBefore)) {
            for (const name of names) {
              if (!given.has(name) && !TRANSPORT_HEADERS.has(name)) throw new Error(`unexpected header ${name} for ${inspect(o)}`);
            }
          }
        } else outcomes.refused++;
      }),
      { numRuns: MODE.fuzzRuns * 2, seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_301) },
    );
    expect(outcomes.answered).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
    // Whatever was refused on the way, the client still reaches the peer.
    const res = await client.request({ service: 'api', path: '/' });
    expect(await res.body.text()).toBe('ok');
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  it('any header value holding CR or LF is refused, and nothing reaches the peer', async () => {
    const before = peer.requests;
    await fc.assert(
      fc.asyncProperty(
        token,
        fc.tuple(fc.string({ maxLength: 6 }), fc.constantFrom('\r', '\n', '\r\n', '\u0000'), fc.string({ maxLength: 6 })),
        fc.constantFrom('string', 'array', 'caller-header', 'caller-option'),
        async (name, [a, crlf, b], shape) => {
          const value = `${a}${crlf}${b}`;
          const options: RequestOptions =
            shape === 'string'
              ? { service: 'api', path: '/', headers: { [`x-${name}`]: value } }
              : shape === 'array'
                ? { service: 'api', path: '/', headers: { [`x-${name}`]: ['ok', value] } }
                : shape === 'caller-header'
                  ? { service: 'api', path: '/', headers: { 'x-peerlb-caller': value } }
                  : { service: 'api', path: '/', caller: value };
          const err = await client.request(options).catch((e: unknown) => e);
          if (!(err instanceof InvalidOptionsError)) throw new Error(`not refused: ${inspect(options)} -> ${describeError(err)}`);
        },
      ),
      { numRuns: MODE.fuzzRuns, seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_302) },
    );
    expect(peer.requests).toBe(before);
  }, MODE.fuzzTimeoutMs);
});
