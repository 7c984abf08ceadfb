import type { IncomingMessage, ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createClient, type ClientOptions } from '@peerlb/client';
import {
  ConsulRegistry,
  InvalidOptionsError,
  LocalRegistry,
  MemoryRegistry,
  silentLogger,
  type ConsulRegistryOptions,
  type LocalRegistryOptions,
} from '@peerlb/registry';
import { registerService, startService, type RegisterServiceOptions, type StartServiceOptions } from '@peerlb/registration';
import { describeError, isTypedError, trackUnhandled } from './support/fuzz.js';
import { MODE } from './support/mode.js';

// Every option of every constructor and front door, fuzzed one mix at a time: an object is built
// (and closed again), or an InvalidOptionsError names the field -- never a crash, never another
// kind of error, never something left running.

const unhandled = trackUnhandled();

/** Values for an option: mostly valid ones, sometimes ones known to be wrong. */
function opt(valid: unknown[], wrong: unknown[] = []): fc.Arbitrary<unknown> {
  if (wrong.length === 0) return fc.constantFrom(...valid);
  return fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...valid) }, { weight: 1, arbitrary: fc.constantFrom(...wrong) });
}

const junk = fc.oneof(
  fc.anything(),
  fc.constantFrom(-1, 0, 0.5, Number.NaN, Infinity, -Infinity, 2 ** 31, 1e-300, '', 'x', null, [], {}, true, Symbol('s')),
);

/**
 * Options made of plausible values for any subset of the fields, then zero to two fields set to
 * junk of any shape: most runs build something, and every kind of wrong value is tried.
 */
function options(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(fields);
  return fc
    .tuple(
      fc.record(fields, { requiredKeys: [] }),
      fc.array(fc.tuple(fc.constantFrom(...keys), junk), { maxLength: 2 }),
    )
    .map(([base, broken]) => {
      const out: Record<string, unknown> = { ...base };
      for (const [key, value] of broken) out[key] = value;
      return out;
    });
}

function expectInvalidOptions(err: unknown, what: string): void {
  if (!(err instanceof InvalidOptionsError) || typeof err.field !== 'string' || err.field === '' || !isTypedError(err)) {
    throw new Error(`${what}: expected InvalidOptionsError naming a field, got ${describeError(err)}`);
  }
}

const show = (o: unknown) => inspect(o, { depth: 4 });

const run = (seed: number, runs: number = MODE.fuzzRuns) => ({ numRuns: runs, seed: Number(process.env.PEERLB_FUZZ_SEED ?? seed) });

describe('fuzzing options', () => {
  it('createClient()', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    let built = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(
        options({
          balancer: opt([undefined]),
          breaker: opt([false, {}, { volumeThreshold: 5 }], [{ errorThresholdPercentage: 101 }, { resetTimeoutMs: -1 }]),
          outlier: opt([false, {}, { consecutiveFailures: 2 }], [{ maxEjectionPercent: 200 }]),
          healthyPanicThreshold: opt([0, 0.5, 1], [1.5]),
          retry: opt([false, {}, { maxAttempts: 2 }, { budget: false }], [{ maxAttempts: 11 }, { budget: { ratio: -1 } }]),
          rateLimit: opt([false, { ratePerSec: 10 }], [{ ratePerSec: 0 }, { ratePerSec: 5, burst: 0.5 }, { ratePerSec: 1, maxCallers: 0 }]),
          timeoutMs: opt([1, 1000, 2 ** 31 - 1]),
          maxRequestBodyBytes: opt([0, 1024, Infinity], [1.5]),
          maxResponseBodyBytes: opt([0, 1024, Infinity], [-1]),
          maxConcurrentPerPeer: opt([1, 10, Infinity], [0]),
          discovery: opt([{}, { maxStalenessMs: Infinity }, { emptyGraceMs: 0 }], [{ emptyGraceMs: -5 }]),
          pool: opt([{}, { connections: null }, { pipelining: 2 }, { tls: { ca: 'x' } }], [{ connections: 0 }, { tls: { rejectUnauthorized: 'no' } }, { tls: { ca: [1] } }]),
          retireGraceMs: opt([1, 10_000]),
          caller: opt(['svc'], ['a b', 'x'.repeat(129), 'line\nbreak']),
          logger: opt([silentLogger], [{ warn: 1 }]),
          closeRegistry: opt([false], ['yes']),
        }),
        async (o) => {
          let client;
          try {
            client = createClient({ registry, ...o } as ClientOptions);
          } catch (err) {
            expectInvalidOptions(err, show(o));
            refused++;
            return;
          }
          built++;
          await client.close();
        },
      ),
      run(7_201),
    );
    await registry.close();
    expect(built).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  it('new ConsulRegistry() and new LocalRegistry()', async () => {
    await fc.assert(
      fc.asyncProperty(
        options({
          address: opt(['http://127.0.0.1:1', 'https://127.0.0.1:1', '127.0.0.1:1', '[::1]:1'], ['ftp://x', 'http://u:p@127.0.0.1:1', 'http://127.0.0.1:1/path']),
          token: opt(['t0ken'], ['with space', 'é']),
          caCert: opt(['-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n'], ['not pem', Buffer.from('x')]),
          datacenter: opt(['dc1'], ['bad dc']),
          waitMs: opt([1000], [600_001]),
          minWatchIntervalMs: opt([0, 100]),
          backoff: opt([{}, { minMs: 10 }], [{ minMs: 10, maxMs: 5 }]),
          requestTimeoutMs: opt([1000]),
          logger: opt([silentLogger], [{}]),
          env: opt([{}, { CONSUL_HTTP_TOKEN: '' }], [{ CONSUL_HTTP_SSL: 'maybe' }, { CONSUL_CACERT: '/nonexistent/ca.pem' }]),
        }),
        async (o) => {
          try {
            // An address is always decided here (option or a harmless default), never the runner's environment.
            await new ConsulRegistry({ address: 'http://127.0.0.1:1', ...o } as ConsulRegistryOptions).close();
          } catch (err) {
            expectInvalidOptions(err, show(o));
          }
        },
      ),
      run(7_202),
    );
    await fc.assert(
      fc.asyncProperty(
        options({
          dir: opt(['/tmp/peerlb-fuzz-never-created', 'relative/dir'], ['nul\u0000byte']),
          rescanIntervalMs: opt([10, 500], [9]),
          logger: opt([silentLogger], [{ warn: 'no' }]),
          env: opt([{}, { PEERLB_REGISTRY_DIR: '' }], [{ PEERLB_REGISTRY_DIR: 'x\u0000' }]),
          now: opt([Date.now], [5]),
        }),
        async (o) => {
          try {
            // Construction does no I/O: nothing is created on disk.
            await new LocalRegistry({ dir: '/tmp/peerlb-fuzz-never-created', ...o } as LocalRegistryOptions).close();
          } catch (err) {
            expectInvalidOptions(err, show(o));
          }
        },
      ),
      run(7_203),
    );
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  const registrationFields = {
    service: opt(['orders'], ['', 'bad name', '-x', 'x'.repeat(64)]),
    id: opt([undefined, 'orders-1'], ['a/b', '']),
    address: opt(['127.0.0.1'], ['http://x', '999.1.1.1', '']),
    tags: opt([[], ['a']], [['a\nb'], [1]]),
    meta: opt([{}, { k: 'v' }, { scheme: 'https' }], [{ scheme: 'ftp' }, { 'bad key': 'v' }]),
    check: opt(
      [undefined, { ttlMs: 1000 }, { http: true }, { ttlMs: 1000, http: { intervalMs: 500 } }],
      [{ ttlMs: 0 }, { http: { intervalMs: 1000, path: 'no-slash' } }, { http: { url: 'ftp://x' } }, { ttlMs: 1000, deregisterCriticalAfterMs: -1 }],
    ),
    healthTimeoutMs: opt([100]),
    heartbeatIntervalMs: opt([100], [5000]),
    startupTimeoutMs: opt([1000]),
    callTimeoutMs: opt([1000]),
    deregisterTimeoutMs: opt([1000]),
    backoff: opt([{}, { minMs: 10, maxMs: 20 }], [{ minMs: 20, maxMs: 10 }]),
    logger: opt([silentLogger], [{ warn: null }]),
    on: opt([{}], [{ state: 'not a function' }]),
    signal: opt([undefined], ['not a signal']),
  };

  it('registerService()', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    let registered = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(options({ ...registrationFields, port: opt([8080], [0, 65_536, 80.5]) }), async (o) => {
        let handle;
        try {
          handle = await registerService({ registry, logger: silentLogger, port: 8080, ...o } as unknown as RegisterServiceOptions);
        } catch (err) {
          expectInvalidOptions(err, show(o));
          refused++;
          return;
        }
        registered++;
        await handle.close();
      }),
      run(7_204),
    );
    await registry.close();
    expect(registered).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);

  it('startService() (on 127.0.0.1, no signal handlers)', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    let started = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(
        options({
          ...registrationFields,
          port: opt([0], [-1, 65_536]),
          portRange: opt([undefined, { start: 40_000, end: 40_099 }], [{ start: 5, end: 1 }, { start: 0, end: 10 }]),
          healthPath: opt(['/health', '/h'], ['health', '/a b']),
          drainMs: opt([0, 10]),
          closeTimeoutMs: opt([10, 100]),
          rateLimit: opt([undefined, { ratePerSec: 10 }], [{ ratePerSec: -1 }, { ratePerSec: 1, key: 'nope' }]),
          handleSignals: fc.constant(false),
        }),
        async (o) => {
          let handle;
          try {
            handle = await startService({
              registry,
              logger: silentLogger,
              handler: (_req: IncomingMessage, res: ServerResponse) => res.end('ok'),
              host: '127.0.0.1',
              handleCrashes: false,
              ...o,
              address: '127.0.0.1',
            } as unknown as StartServiceOptions);
          } catch (err) {
            expectInvalidOptions(err, show(o));
            refused++;
            return;
          }
          started++;
          await handle.close();
        },
      ),
      run(7_205, Math.ceil(MODE.fuzzRuns / 2)),
    );
    await registry.close();
    expect(started).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(process.listenerCount('SIGTERM')).toBe(0);
    expect(unhandled.errors).toEqual([]);
  }, MODE.fuzzTimeoutMs);
});
