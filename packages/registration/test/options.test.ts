import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError, MemoryRegistry, silentLogger } from '@peerlb/registry';
import { registerService, startService } from '../src/index.js';
import { normaliseRegisterOptions, normaliseStartOptions, type StartServiceOptions } from '../src/options.js';

const makeId = (service: string) => `${service}-test`;
const base = { service: 'orders', port: 8080, logger: silentLogger };
const handler = () => {};

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as InvalidOptionsError).code).toBe('PEERLB_INVALID_OPTIONS');
    return (err as InvalidOptionsError).field;
  }
  throw new Error('expected a throw');
}

const savedAddress = process.env.ADDRESS;
afterEach(() => {
  if (savedAddress === undefined) delete process.env.ADDRESS;
  else process.env.ADDRESS = savedAddress;
});

describe('registerService options', () => {
  it.each([
    [{ ...base, service: '' }, 'service'],
    [{ ...base, service: 'bad name' }, 'service'],
    [{ ...base, port: 0 }, 'port'],
    [{ ...base, port: 70000 }, 'port'],
    [{ ...base, port: 80.5 }, 'port'],
    [{ service: 'orders' }, 'port'],
    [{ ...base, address: 'http://x' }, 'address'],
    [{ ...base, id: '-x' }, 'id'],
    [{ ...base, tags: ['ok', ''] }, 'tags[1]'],
    [{ ...base, meta: { 'bad key': 'v' } }, 'meta.bad key'],
    [{ ...base, check: { ttlMs: -1 } }, 'check.ttlMs'],
    [{ ...base, check: { http: { intervalMs: 0 } } }, 'check.http.intervalMs'],
    [{ ...base, check: { http: { path: 'health' } } }, 'check.http.path'],
    [{ ...base, check: { http: { path: '/h', url: 'http://x/h' } } }, 'check.http'],
    [{ ...base, check: { deregisterCriticalAfterMs: 0 } }, 'check.deregisterCriticalAfterMs'],
    [{ ...base, check: 'ttl' }, 'check'],
    [{ ...base, check: { ttlMs: 1000 }, heartbeatIntervalMs: 1000 }, 'heartbeatIntervalMs'],
    [{ ...base, health: true }, 'health'],
    [{ ...base, startupTimeoutMs: 0 }, 'startupTimeoutMs'],
    [{ ...base, callTimeoutMs: Number.NaN }, 'callTimeoutMs'],
    [{ ...base, deregisterTimeoutMs: -5 }, 'deregisterTimeoutMs'],
    [{ ...base, healthTimeoutMs: 'soon' }, 'healthTimeoutMs'],
    [{ ...base, backoff: { minMs: 100, maxMs: 50 } }, 'backoff.maxMs'],
    [{ ...base, registry: {} }, 'registry'],
    [{ ...base, logger: console.log }, 'logger'],
    [{ ...base, signal: 'stop' }, 'signal'],
    [{ ...base, on: { regsitered: () => {} } }, 'on.regsitered'],
    [{ ...base, on: { state: 'log' } }, 'on.state'],
  ])('%j is refused naming %s', (options, field) => {
    expect(fieldOf(() => normaliseRegisterOptions(options as never, makeId))).toBe(field);
  });

  it('rejects through registerService before touching any registry', async () => {
    const registry = new MemoryRegistry({ logger: silentLogger });
    await expect(registerService({ ...base, port: -1, registry })).rejects.toMatchObject({ code: 'PEERLB_INVALID_OPTIONS', field: 'port' });
    expect(await registry.list('orders')).toEqual([]);
  });

  it('defaults to a 5 s TTL heartbeated every ttl/3 with deregisterCriticalAfter 60 s', () => {
    const { config } = normaliseRegisterOptions(base, makeId);
    expect(config.check).toEqual({ ttlMs: 5000, deregisterCriticalAfterMs: 60000 });
    expect(config.heartbeatIntervalMs).toBeCloseTo(5000 / 3);
    expect(config.startupTimeoutMs).toBe(30000);
    expect(config.id).toBe('orders-test');
  });

  it('an HTTP-only check keeps deregisterCriticalAfter and defaults its path', () => {
    const { config } = normaliseRegisterOptions({ ...base, check: { http: true } }, makeId);
    expect(config.check).toEqual({ http: { intervalMs: 10000, path: '/health' }, deregisterCriticalAfterMs: 60000 });
    expect(config.heartbeatIntervalMs).toBe(10000);
  });

  it('takes the address from options, then ADDRESS, then 127.0.0.1', () => {
    delete process.env.ADDRESS;
    expect(normaliseRegisterOptions(base, makeId).config.address).toBe('127.0.0.1');
    process.env.ADDRESS = '10.1.2.3';
    expect(normaliseRegisterOptions(base, makeId).config.address).toBe('10.1.2.3');
    expect(normaliseRegisterOptions({ ...base, address: 'orders.internal' }, makeId).config.address).toBe('orders.internal');
    process.env.ADDRESS = 'not an address';
    expect(fieldOf(() => normaliseRegisterOptions(base, makeId))).toBe('address');
  });
});

describe('startService options', () => {
  const sbase: StartServiceOptions = { service: 'orders', handler, logger: silentLogger, handleSignals: false };
  it.each([
    [{ ...sbase, handler: undefined }, 'handler'],
    [{ ...sbase, app: handler }, 'app'],
    [{ ...sbase, handler: 'x' }, 'handler'],
    [{ ...sbase, handler: undefined, server: {} }, 'server'],
    [{ ...sbase, port: -1 }, 'port'],
    [{ ...sbase, port: 3000, portRange: { start: 1, end: 2 } }, 'port'],
    [{ ...sbase, portRange: { start: 0, end: 10 } }, 'portRange.start'],
    [{ ...sbase, portRange: { start: 10, end: 70000 } }, 'portRange.end'],
    [{ ...sbase, portRange: { start: 10, end: 9 } }, 'portRange.end'],
    [{ ...sbase, portRange: [1, 2] }, 'portRange'],
    [{ ...sbase, healthPath: 'health' }, 'healthPath'],
    [{ ...sbase, healthPath: '/health?x' }, 'healthPath'],
    [{ ...sbase, drainMs: -1 }, 'drainMs'],
    [{ ...sbase, closeTimeoutMs: 0 }, 'closeTimeoutMs'],
    [{ ...sbase, handleSignals: 'yes' }, 'handleSignals'],
    [{ ...sbase, handleCrashes: 1 }, 'handleCrashes'],
    [{ ...sbase, host: 'a b' }, 'host'],
    [{ ...sbase, service: '_x' }, 'service'],
    [{ ...sbase, rateLimit: 5 }, 'rateLimit'],
  ])('%j is refused naming %s', (options, field) => {
    expect(fieldOf(() => normaliseStartOptions(options as never, makeId))).toBe(field);
  });

  it.each([
    [{ ratePerSec: 0 }, 'rateLimit.ratePerSec'],
    [{ ratePerSec: 5, burst: 0.5 }, 'rateLimit.burst'],
    [{ ratePerSec: 5, maxCallers: 0 }, 'rateLimit.maxCallers'],
    [{ ratePerSec: 5, key: 'x-caller' }, 'rateLimit.key'],
  ])('rate limit %j is refused naming %s', async (rateLimit, field) => {
    await expect(startService({ ...sbase, rateLimit: rateLimit as never, registry: new MemoryRegistry() })).rejects.toMatchObject({
      field,
    });
  });

  it('defaults: ephemeral port, /health in the HTTP check path, drain 5 s, signals and crashes handled, binds the IP address', () => {
    const cfg = normaliseStartOptions({ service: 'orders', handler, check: { http: { intervalMs: 1000 } }, healthPath: '/ready' }, makeId);
    expect(cfg.port).toEqual({ kind: 'ephemeral' });
    expect(cfg.registration.check.http).toEqual({ intervalMs: 1000, path: '/ready' });
    expect(cfg.drainMs).toBe(5000);
    expect(cfg.handleSignals).toBe(true);
    expect(cfg.handleCrashes).toBe(true);
    expect(cfg.host).toBe(cfg.registration.address);
    expect(normaliseStartOptions({ ...sbase }, makeId).handleCrashes).toBe(false);
    expect(normaliseStartOptions({ ...sbase, address: 'orders.internal' }, makeId).host).toBeUndefined();
    expect(normaliseStartOptions({ ...sbase, drainMs: 0 }, makeId).drainMs).toBe(0);
  });
});
