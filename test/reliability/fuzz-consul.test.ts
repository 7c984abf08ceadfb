import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@peerlb/client';
import { ConsulRegistry, parseInstance, silentLogger, type ServiceInstance, type WatchUpdate } from '@peerlb/registry';
import { describeError, dialRecorder, isTypedError, trackUnhandled } from './support/fuzz.js';
import { MODE } from './support/mode.js';
import { sleep } from './support/processes.js';
import { startPeer, startRawServer, startTrap, type Peer, type RawServer, type Trap } from './support/servers.js';

// Whatever an agent (or something posing as one) answers to GET /v1/health/service/:name -- any
// status, any X-Consul-Index, any headers, any body, cut short or too long -- the registry and the
// client never crash, never leave a rejection unhandled, only hand on valid instances, never dial
// an invalid one, and fail with typed errors.

const unhandled = trackUnhandled();
const SERVICE = 'fuzz';

let raw: RawServer;
let peer: Peer;
let trap: Trap;
beforeAll(async () => {
  raw = await startRawServer(() => '');
  peer = await startPeer();
  trap = await startTrap();
});
afterAll(async () => {
  await raw?.close();
  await peer?.close();
  await trap?.close();
});

/** Junk for one field of a health entry: wrong types, wrong values, or anything at all. */
const junk: Record<string, fc.Arbitrary<unknown>> = {
  ID: fc.oneof(fc.string(), fc.constantFrom('', '../x', 'a/b', 'x'.repeat(200), null, 7)),
  Service: fc.oneof(fc.string(), fc.constantFrom('other', '', null, ['fuzz'])),
  Address: fc.oneof(
    fc.string(),
    fc.constantFrom('127.0.0.1:80', 'http://127.0.0.1', '999.0.0.1', ' 127.0.0.1', 'a b', '[::1]', '127.0.0.1\r\n', null, 1),
  ),
  Port: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -1, 65_536, 1.5, '80', null, Number.MAX_SAFE_INTEGER)),
  Tags: fc.oneof(fc.anything(), fc.array(fc.string(), { maxLength: 3 }), fc.constant(['a\nb'])),
  Meta: fc.oneof(
    fc.anything(),
    fc.dictionary(fc.string(), fc.anything(), { maxKeys: 3 }),
    fc.record({ scheme: fc.oneof(fc.string(), fc.constantFrom('ftp', 'HTTP', '', 'https ', 'http\r\n', 'file')) }),
  ),
};

/** Mostly valid health entries, some with one or two fields broken, some not entries at all. */
function entryArb(ports: number[]): fc.Arbitrary<unknown> {
  const valid = fc.record({
    ID: fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/),
    Service: fc.constantFrom(SERVICE, SERVICE.toUpperCase()),
    Address: fc.constantFrom('127.0.0.1', ''), // '' means the node's address
    Port: fc.constantFrom(...ports),
    Tags: fc.array(fc.stringMatching(/^[a-z]{1,8}$/), { maxLength: 2 }),
    Meta: fc.oneof(fc.constant({}), fc.constant({ scheme: 'http' }), fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.stringMatching(/^[a-z]{0,6}$/), { maxKeys: 2 })),
  });
  const mutation = fc.constantFrom(...Object.keys(junk)).chain((key) =>
    fc.oneof(fc.constant({ key, drop: true, value: undefined as unknown }), junk[key]!.map((value) => ({ key, drop: false, value }))),
  );
  const entry = fc.tuple(valid, fc.array(mutation, { maxLength: 2 })).map(([service, mutations]) => {
    const s: Record<string, unknown> = { ...service };
    for (const m of mutations) {
      if (m.drop) delete s[m.key];
      else s[m.key] = m.value;
    }
    return { Node: { Node: 'n1', Address: '127.0.0.1' }, Service: s, Checks: [] };
  });
  return fc.oneof(
    { weight: 10, arbitrary: entry },
    { weight: 1, arbitrary: fc.anything() },
    { weight: 1, arbitrary: fc.record({ Node: fc.anything(), Service: fc.anything() }, { requiredKeys: [] }) },
  );
}

const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}$/;

/** One raw HTTP response, as bytes, built from parts that may each be wrong. */
function responseArb(ports: number[]): fc.Arbitrary<Buffer> {
  const body = fc.oneof(
    { weight: 4, arbitrary: fc.array(entryArb(ports), { maxLength: 6 }).map((a) => JSON.stringify(a)) },
    { weight: 1, arbitrary: fc.json() },
    { weight: 1, arbitrary: fc.string() },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.array(entryArb(ports), { maxLength: 4 }), fc.nat())
        .map(([a, cut]) => JSON.stringify(a).slice(0, cut % 200)),
    },
  );
  const index = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 1_000_000 }).map(String) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String) },
    { weight: 1, arbitrary: fc.constantFrom('0', '-1', '1e3', ' 12 ', '0x10', '', '18446744073709551616') },
    { weight: 1, arbitrary: fc.stringMatching(/^[\x21-\x7e]{0,12}$/) },
  );
  const extraHeaders = fc.array(fc.tuple(fc.stringMatching(TOKEN_CHARS), fc.stringMatching(/^[\x20-\x7e]{0,30}$/)), { maxLength: 3 });
  const framing = fc.oneof(
    { weight: 6, arbitrary: fc.constant('exact') },
    { weight: 3, arbitrary: fc.constantFrom('short', 'long', 'none', 'chunked', 'bad-chunked') },
  );
  const status = fc.oneof({ weight: 6, arbitrary: fc.constant(200) }, { weight: 2, arbitrary: fc.integer({ min: 100, max: 599 }) });
  const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', undefined, 'x/y');
  const structured = fc
    .record({ status, index, extraHeaders, framing, contentType, body })
    .map(({ status, index, extraHeaders, framing, contentType, body }) => {
      const bytes = Buffer.from(body);
      const lines = [`HTTP/1.1 ${status} Fuzz`];
      if (contentType !== undefined) lines.push(`Content-Type: ${contentType}`);
      if (index !== undefined) lines.push(`X-Consul-Index: ${index}`);
      for (const [name, value] of extraHeaders) lines.push(`${name}: ${value}`);
      let payload: Buffer = bytes;
      if (framing === 'exact') lines.push(`Content-Length: ${bytes.length}`);
      else if (framing === 'short') lines.push(`Content-Length: ${Math.max(0, bytes.length - 3)}`);
      else if (framing === 'long') lines.push(`Content-Length: ${bytes.length + 50}`);
      else if (framing === 'none') lines.push('Connection: close');
      else {
        lines.push('Transfer-Encoding: chunked');
        payload =
          framing === 'chunked'
            ? Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n0\r\n\r\n')])
            : Buffer.concat([Buffer.from('zz\r\n'), bytes]);
      }
      return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
    });
  return fc.oneof({ weight: 9, arbitrary: structured }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) });
}

function registry(): ConsulRegistry {
  return new ConsulRegistry({
    address: raw.url,
    requestTimeoutMs: 1_000,
    waitMs: 1_000,
    minWatchIntervalMs: 10,
    backoff: { minMs: 10, maxMs: 50 },
    logger: silentLogger,
    env: {},
  });
}

function checkInstances(instances: readonly ServiceInstance[]): void {
  for (const instance of instances) {
    expect(parseInstance(instance).ok).toBe(true);
    expect(instance.service.toLowerCase()).toBe(SERVICE);
  }
}

describe('fuzzing the Consul health endpoint', () => {
  it('list(): valid instances or a typed error, never anything else', async () => {
    const r = registry();
    const seen = { instances: 0, errors: 0 };
    try {
      await fc.assert(
        fc.asyncProperty(responseArb([peer.port, trap.port]), async (response) => {
          raw.answer = () => response;
          let instances: ServiceInstance[];
          try {
            instances = await r.list(SERVICE);
          } catch (err) {
            if (!isTypedError(err)) throw new Error(`untyped error: ${describeError(err)}`);
            seen.errors++;
            return;
          }
          checkInstances(instances);
          seen.instances += instances.length;
        }),
        { numRuns: MODE.fuzzRuns, seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_001) },
      );
    } finally {
      await r.close();
    }
    // Both sides were exercised: the generator is not all junk, nor all valid.
    expect(seen.instances).toBeGreaterThan(0);
    expect(seen.errors).toBeGreaterThan(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  it('watch(): every update is valid instances or a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(responseArb([peer.port, trap.port]), { minLength: 1, maxLength: 4 }), async (responses) => {
        let turn = 0;
        raw.answer = () => responses[turn++ % responses.length]!;
        const r = registry();
        const updates: WatchUpdate[] = [];
        const watch = r.watch(SERVICE, (u) => updates.push(u));
        try {
          await sleep(60);
        } finally {
          watch.close();
          await r.close();
        }
        for (const u of updates) {
          if (u.ok) checkInstances(u.instances);
          else if (!isTypedError(u.error)) throw new Error(`untyped watch error: ${describeError(u.error)}`);
        }
      }),
      { numRuns: Math.ceil(MODE.fuzzRuns / 3), seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_002) },
    );
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  it('client.request(): never dials an invalid peer; an answer from a valid one, or a typed error', async () => {
    const { transportFactory, outcomes, requestOnce } = dialRecorder(peer.port);
    await fc.assert(
      fc.asyncProperty(responseArb([peer.port]), async (response) => {
        raw.answer = () => response;
        const client = createClient({
          registry: registry(),
          closeRegistry: true,
          transportFactory,
          logger: silentLogger,
          timeoutMs: 150,
          retireGraceMs: 100,
        });
        try {
          await requestOnce(client, SERVICE, (statusCode) => expect(statusCode).toBe(200));
        } finally {
          await client.close();
        }
      }),
      { numRuns: Math.ceil(MODE.fuzzRuns / 3), seed: Number(process.env.PEERLB_FUZZ_SEED ?? 7_003) },
    );
    expect(outcomes.answered).toBeGreaterThan(0);
    expect(outcomes.typed).toBeGreaterThan(0);
    expect(trap.connections).toBe(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);
});
