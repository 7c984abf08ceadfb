import { describe, expect, it } from 'vitest';
import {
  InvalidOptionsError,
  acceptInstances,
  isValidAddress,
  parseInstance,
  sameInstances,
  validateCheckSpec,
  validateInstanceInput,
  validateServiceName,
  type RegistryLogger,
  type ServiceInstance,
} from '../src/index.js';

const good = { id: 'orders-1', service: 'orders', address: '127.0.0.1', port: 8080 };

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

describe('service names', () => {
  it.each(['', '-orders', 'or ders', 'orders/x', 'a'.repeat(64), 'ördérs'])('rejects %j naming the field', (name) => {
    expect(fieldOf(() => validateServiceName(name))).toBe('service');
  });
  it.each(['orders', 'a', 'Order_Service-2', 'a'.repeat(63)])('accepts %j', (name) => {
    expect(validateServiceName(name)).toBe(name);
  });
});

describe('instances', () => {
  it('normalises tags and meta and freezes the result', () => {
    const inst = validateInstanceInput(good);
    expect(inst).toEqual({ ...good, tags: [], meta: {} });
    expect(Object.isFrozen(inst)).toBe(true);
  });

  it.each([
    [{ ...good, port: 0 }, 'instance.port'],
    [{ ...good, port: 65536 }, 'instance.port'],
    [{ ...good, port: 80.5 }, 'instance.port'],
    [{ ...good, port: '80' }, 'instance.port'],
    [{ ...good, address: 'http://127.0.0.1' }, 'instance.address'],
    [{ ...good, address: '999.1.1.1' }, 'instance.address'],
    [{ ...good, address: '' }, 'instance.address'],
    [{ ...good, id: '../etc/passwd' }, 'instance.id'],
    [{ ...good, id: '' }, 'instance.id'],
    [{ ...good, service: 'bad name' }, 'instance.service'],
    [{ ...good, tags: ['ok', 'bad\r\ntag'] }, 'instance.tags[1]'],
    [{ ...good, meta: { version: 3 } }, 'instance.meta.version'],
    [{ ...good, meta: { 'bad key': 'x' } }, 'instance.meta.bad key'],
  ])('rejects %j with field %s', (input, field) => {
    expect(fieldOf(() => validateInstanceInput(input as never))).toBe(field);
  });

  it.each(['127.0.0.1', '::1', 'fe80::1', 'orders.internal', 'localhost', 'a-b.c-d.example'])('accepts address %s', (a) => {
    expect(isValidAddress(a)).toBe(true);
  });
  it.each(['a..b', '-a.b', 'a_b', 'host:80', '1.2.3.4/8', ' 127.0.0.1'])('rejects address %j', (a) => {
    expect(isValidAddress(a)).toBe(false);
  });

  it('acceptInstances drops and reports invalid entries, sorts by id, applies the filter', () => {
    const warnings: string[] = [];
    const logger: RegistryLogger = { warn: (m) => warnings.push(m) };
    const list = acceptInstances(
      [
        { ...good, id: 'b', tags: ['v2'] },
        { ...good, id: 'bad', port: 70000 },
        'garbage',
        { ...good, id: 'a', tags: ['v2'] },
        { ...good, id: 'c' },
      ],
      'test',
      logger,
      { tags: ['v2'] },
    );
    expect(list.map((i) => i.id)).toEqual(['a', 'b']);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('port');
  });

  it('hands back an instance it produced as it is, and compares equal lists without rebuilding them', () => {
    const first = parseInstance({ ...good, tags: ['a'], meta: { zone: 'x' } });
    expect(first.ok).toBe(true);
    const value = (first as { value: ServiceInstance }).value;
    expect(Object.isFrozen(value) && Object.isFrozen(value.tags) && Object.isFrozen(value.meta)).toBe(true);
    expect((parseInstance(value) as { value: ServiceInstance }).value).toBe(value);
    // A look-alike that is not frozen is checked again, and a changed one compares different.
    const lookAlike = { ...value, tags: ['a'], meta: { zone: 'x' } };
    expect((parseInstance(lookAlike) as { value: ServiceInstance }).value).not.toBe(lookAlike);
    expect(sameInstances([value], [lookAlike])).toBe(true);
    lookAlike.meta.zone = 'y';
    expect(sameInstances([value], [lookAlike])).toBe(false);
  });

  it('parseInstance never throws on hostile input', () => {
    for (const raw of [null, undefined, 42, [], { id: {} }, { ...good, tags: 'x' }, { ...good, meta: [] }]) {
      expect(parseInstance(raw).ok).toBe(false);
    }
  });
});

describe('health check specs', () => {
  it('needs http, ttl or both', () => {
    expect(fieldOf(() => validateCheckSpec({}))).toBe('check');
    expect(fieldOf(() => validateCheckSpec(undefined))).toBe('check');
  });
  it.each([
    [{ ttlMs: 0 }, 'check.ttlMs'],
    [{ ttlMs: -5 }, 'check.ttlMs'],
    [{ ttlMs: Number.NaN }, 'check.ttlMs'],
    [{ http: { intervalMs: 0 } }, 'check.http.intervalMs'],
    [{ http: {} }, 'check.http.intervalMs'],
    [{ http: { intervalMs: 1000, timeoutMs: -1 } }, 'check.http.timeoutMs'],
    [{ http: { intervalMs: 1000, path: 'health' } }, 'check.http.path'],
    [{ http: { intervalMs: 1000, url: 'ftp://x/health' } }, 'check.http.url'],
    [{ http: { intervalMs: 1000, url: 'http://x/h', path: '/h' } }, 'check.http'],
    [{ ttlMs: 1000, deregisterCriticalAfterMs: 0 }, 'check.deregisterCriticalAfterMs'],
  ])('rejects %j with field %s', (spec, field) => {
    expect(fieldOf(() => validateCheckSpec(spec as never))).toBe(field);
  });
  it('defaults the path to /health and the timeout to min(10s, interval)', () => {
    expect(validateCheckSpec({ http: { intervalMs: 500 }, ttlMs: 3000 })).toEqual({
      http: { target: { path: '/health' }, intervalMs: 500, timeoutMs: 500 },
      ttlMs: 3000,
    });
  });
});
