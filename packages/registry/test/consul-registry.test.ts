import { afterEach, describe, expect, it } from 'vitest';
import {
  AbortedError,
  ClosedError,
  ConsulRegistry,
  InvalidOptionsError,
  NotRegisteredError,
  RegistryAuthError,
  RegistryUnavailableError,
  type ConsulRegistryOptions,
  type RegistryLogger,
} from '../src/index.js';
import { healthEntry, rejection, startConsulStub, waitUntil, type ConsulStub, type StubHandler } from './consul-stub.js';

const TOKEN = 'b3f1c2d4-secret-token-7a9e';

interface LogLine {
  message: string;
  details?: Record<string, unknown>;
}

const stubs: ConsulStub[] = [];
const registries: ConsulRegistry[] = [];

afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.close()));
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

async function setup(handler?: StubHandler, options: ConsulRegistryOptions = {}) {
  const stub = await startConsulStub(handler);
  stubs.push(stub);
  const logs: LogLine[] = [];
  const logger: RegistryLogger = { warn: (message, details) => logs.push({ message, ...(details ? { details } : {}) }) };
  // The stub has no catalog: register() resolves once the agent accepted it.
  const registry = new ConsulRegistry({ address: stub.url, token: TOKEN, logger, env: {}, confirmRegistration: false, ...options });
  registries.push(registry);
  return { stub, registry, logs };
}

const instance = { id: 'web-1', service: 'web', address: '127.0.0.1', port: 8080, tags: ['v1'], meta: { zone: 'a' } };


describe('ConsulRegistry.register', () => {
  it('PUTs the documented registration body with separate HTTP and TTL checks, explicit ids and Go durations', async () => {
    const { stub, registry } = await setup();
    await registry.register(instance, {
      http: { path: '/healthz', intervalMs: 1_500, timeoutMs: 800 },
      ttlMs: 10_000,
      deregisterCriticalAfterMs: 90_000,
    });
    const [req] = stub.requests;
    expect(req).toMatchObject({ method: 'PUT', path: '/v1/agent/service/register' });
    expect(req!.headers['x-consul-token']).toBe(TOKEN);
    expect(JSON.parse(req!.body)).toEqual({
      ID: 'web-1',
      Name: 'web',
      Tags: ['v1'],
      Address: '127.0.0.1',
      Port: 8080,
      Meta: { zone: 'a' },
      Checks: [
        {
          CheckID: 'service:web-1:http',
          Name: 'web HTTP check',
          HTTP: 'http://127.0.0.1:8080/healthz',
          Interval: '1500ms',
          Timeout: '800ms',
          DeregisterCriticalServiceAfter: '90s',
        },
        { CheckID: 'service:web-1:ttl', Name: 'web TTL check', TTL: '10s', DeregisterCriticalServiceAfter: '90s' },
      ],
    });
  });

  it('sends a TTL-only check without Interval, and no DeregisterCriticalServiceAfter unless asked', async () => {
    const { stub, registry } = await setup();
    await registry.register({ id: 'w-2', service: 'web', address: 'web.internal', port: 80 }, { ttlMs: 2_500 });
    expect(JSON.parse(stub.requests[0]!.body)).toEqual({
      ID: 'w-2',
      Name: 'web',
      Tags: [],
      Address: 'web.internal',
      Port: 80,
      Meta: {},
      Checks: [{ CheckID: 'service:w-2:ttl', Name: 'web TTL check', TTL: '2500ms' }],
    });
  });

  it('rejects invalid input before any request, naming the field', async () => {
    const { stub, registry } = await setup();
    await expect(registry.register({ ...instance, port: 70_000 }, { ttlMs: 1_000 })).rejects.toMatchObject({
      code: 'PEERLB_INVALID_OPTIONS',
      field: 'instance.port',
    });
    await expect(registry.register(instance, { http: { intervalMs: -5 } })).rejects.toMatchObject({
      field: 'check.http.intervalMs',
    });
    await expect(registry.register(instance, {})).rejects.toMatchObject({ field: 'check' });
    expect(stub.requests).toHaveLength(0);
  });

  it('maps a 400 to a permanent InvalidOptionsError carrying the status and the agent explanation, not a retryable one', async () => {
    const { registry } = await setup(() => ({ status: 400, text: 'Invalid check: TTL must be > 0 for TTL checks' }));
    const err = await rejection(registry.register(instance, { ttlMs: 1_000 }));
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect(err).not.toBeInstanceOf(RegistryUnavailableError);
    expect(err).toMatchObject({ code: 'PEERLB_INVALID_OPTIONS', field: 'instance' });
    expect(err.message).toContain('400');
    expect(err.message).toContain('TTL must be > 0');
  });
});

describe('ConsulRegistry.heartbeat', () => {
  it('renews the TTL check with pass, warn or fail and the note', async () => {
    const { stub, registry } = await setup();
    await registry.register(instance, { ttlMs: 5_000 });
    await registry.heartbeat('web-1');
    await registry.heartbeat('web-1', { status: 'warning', note: 'slow disk' });
    await registry.heartbeat('web-1', { status: 'critical' });
    const beats = stub.matching('/v1/agent/check/');
    expect(beats.map((r) => [r.method, r.path, r.query.get('note')])).toEqual([
      ['PUT', '/v1/agent/check/pass/service:web-1:ttl', null],
      ['PUT', '/v1/agent/check/warn/service:web-1:ttl', 'slow disk'],
      ['PUT', '/v1/agent/check/fail/service:web-1:ttl', null],
    ]);
    expect(beats.every((r) => r.headers['x-consul-token'] === TOKEN)).toBe(true);
  });

  it('throws NotRegisteredError when the agent no longer knows the TTL check (404 or the older 500)', async () => {
    const { stub, registry } = await setup();
    await registry.register(instance, { ttlMs: 5_000 });
    stub.setHandler(() => ({ status: 404, text: 'Unknown check ID "service:web-1:ttl". Ensure that the check ID is passed, not the check name.' }));
    await expect(registry.heartbeat('web-1')).rejects.toBeInstanceOf(NotRegisteredError);
    stub.setHandler(() => ({ status: 500, text: 'CheckID "service:web-1:ttl" does not have associated TTL' }));
    await expect(registry.heartbeat('web-1')).rejects.toMatchObject({ code: 'PEERLB_NOT_REGISTERED', instanceId: 'web-1' });
  });

  it('does not mistake other agent failures for a forgotten instance', async () => {
    const { stub, registry } = await setup();
    await registry.register(instance, { ttlMs: 5_000 });
    stub.setHandler(() => ({ status: 500, text: 'No cluster leader' }));
    const err = await rejection(registry.heartbeat('web-1'));
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(err).not.toBeInstanceOf(NotRegisteredError);
  });

  it('for an instance with only an HTTP check, verifies that the agent still knows the service', async () => {
    const { stub, registry } = await setup();
    await registry.register(instance, { http: { intervalMs: 1_000 } });
    stub.setHandler((req) => (req.path === '/v1/agent/services' ? { json: { 'web-1': { ID: 'web-1', Service: 'web' } } } : {}));
    await registry.heartbeat('web-1', { status: 'critical' });
    expect(stub.matching('/v1/agent/check/')).toHaveLength(0);
    stub.setHandler((req) => (req.path === '/v1/agent/services' ? { json: {} } : {}));
    await expect(registry.heartbeat('web-1')).rejects.toBeInstanceOf(NotRegisteredError);
  });

  it('for an instance it did not register, falls back from the TTL check to the service list', async () => {
    const { stub, registry } = await setup((req) => {
      if (req.path.startsWith('/v1/agent/check/')) return { status: 404, text: 'Unknown check ID' };
      if (req.path === '/v1/agent/services') return { json: { 'api-7': { ID: 'api-7' } } };
      return {};
    });
    await registry.heartbeat('api-7');
    await expect(registry.heartbeat('api-8')).rejects.toBeInstanceOf(NotRegisteredError);
    expect(stub.requests.map((r) => r.path)).toEqual([
      '/v1/agent/check/pass/service:api-7:ttl',
      '/v1/agent/services',
      '/v1/agent/check/pass/service:api-8:ttl',
      '/v1/agent/services',
    ]);
  });

  it('rejects a bad status or id, naming the field', async () => {
    const { registry } = await setup();
    await expect(registry.heartbeat('web-1', { status: 'fine' as never })).rejects.toMatchObject({ field: 'status' });
    await expect(registry.heartbeat('../etc')).rejects.toMatchObject({ field: 'id' });
  });
});

describe('ConsulRegistry.deregister', () => {
  it('PUTs the deregistration and treats an unknown id (404) as done', async () => {
    const { stub, registry } = await setup(() => ({ status: 404, text: 'Unknown service ID "gone-1"' }));
    await expect(registry.deregister('gone-1')).resolves.toBeUndefined();
    expect(stub.requests[0]).toMatchObject({ method: 'PUT', path: '/v1/agent/service/deregister/gone-1' });
  });

  it('reports other failures as unavailable', async () => {
    const { registry } = await setup(() => ({ status: 503, text: 'overloaded' }));
    await expect(registry.deregister('web-1')).rejects.toBeInstanceOf(RegistryUnavailableError);
  });
});

describe('ConsulRegistry.list', () => {
  it('reads passing instances and maps them, falling back to the node address for an empty service address', async () => {
    const { stub, registry } = await setup(() => ({
      headers: { 'x-consul-index': '42' },
      json: [
        healthEntry('web', 'web-2', 8081, { address: '', nodeAddress: '10.1.2.3', tags: ['v2'], meta: { zone: 'b' } }),
        healthEntry('web', 'web-1', 8080, { tags: ['v1'] }),
      ],
    }));
    const list = await registry.list('web');
    expect(list).toEqual([
      { id: 'web-1', service: 'web', address: '127.0.0.1', port: 8080, tags: ['v1'], meta: {} },
      { id: 'web-2', service: 'web', address: '10.1.2.3', port: 8081, tags: ['v2'], meta: { zone: 'b' } },
    ]);
    const [req] = stub.requests;
    expect(req).toMatchObject({ method: 'GET', path: '/v1/health/service/web' });
    expect(req!.query.has('passing')).toBe(true);
    expect(req!.query.has('index')).toBe(false);
    expect(req!.headers['x-consul-token']).toBe(TOKEN);
  });

  it('drops and reports invalid or foreign entries, and serves the valid ones', async () => {
    const { registry, logs } = await setup(() => ({
      json: [
        healthEntry('web', 'web-1', 8080),
        healthEntry('web', 'web-bad-port', 0),
        healthEntry('web', 'web-bad-addr', 80, { address: 'http://evil/' }),
        healthEntry('other', 'other-1', 80),
        { Node: null, Service: null },
        'not an entry',
      ],
    }));
    expect((await registry.list('web')).map((i) => i.id)).toEqual(['web-1']);
    expect(logs).toHaveLength(5);
    expect(logs.some((l) => l.message.includes('port'))).toBe(true);
    expect(logs.some((l) => l.message.includes('address'))).toBe(true);
    expect(logs.some((l) => l.message.includes('"other"'))).toBe(true);
  });

  it('applies tag and meta filters', async () => {
    const { registry } = await setup(() => ({
      json: [
        healthEntry('web', 'web-1', 8080, { tags: ['v1', 'canary'], meta: { zone: 'a' } }),
        healthEntry('web', 'web-2', 8081, { tags: ['v2'], meta: { zone: 'a' } }),
      ],
    }));
    const ids = async (filter: object) => (await registry.list('web', { filter })).map((i) => i.id);
    expect(await ids({ tags: ['canary'] })).toEqual(['web-1']);
    expect(await ids({ meta: { zone: 'a' } })).toEqual(['web-1', 'web-2']);
    expect(await ids({ tags: ['v2'], meta: { zone: 'b' } })).toEqual([]);
  });

  it('sends the datacenter when configured', async () => {
    const { stub, registry } = await setup(() => ({ json: [] }), { datacenter: 'eu-west' });
    await registry.list('web');
    expect(stub.requests[0]!.query.get('dc')).toBe('eu-west');
  });

  it('treats a body that is not an array as unavailable', async () => {
    const { registry } = await setup(() => ({ json: { Service: 'web' } }));
    await expect(registry.list('web')).rejects.toBeInstanceOf(RegistryUnavailableError);
  });

  it('rejects an invalid service name or filter, naming the field', async () => {
    const { registry } = await setup();
    await expect(registry.list('no spaces')).rejects.toMatchObject({ field: 'service' });
    await expect(registry.list('web', { filter: { tags: 'v1' as never } })).rejects.toMatchObject({ field: 'filter.tags' });
  });
});

describe('ConsulRegistry errors and lifecycle', () => {
  it('maps 403 to RegistryAuthError without ever showing the token, even when the agent echoes it', async () => {
    const echo = { status: 403, text: `Permission denied: token ${TOKEN} lacks service:write` };
    const { registry, logs } = await setup(() => echo);
    const errors = [
      await rejection(registry.register(instance, { ttlMs: 1_000 })),
      await rejection(registry.heartbeat('web-1')),
      await rejection(registry.list('web')),
      await rejection(registry.deregister('web-1')),
    ];
    for (const err of errors) {
      expect(err).toBeInstanceOf(RegistryAuthError);
      expect(err.message).toContain('403');
      expect(err.message).not.toContain(TOKEN);
      expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(TOKEN);
      expect(String((err.cause as Error | undefined)?.message ?? '')).not.toContain(TOKEN);
    }
    expect(JSON.stringify(logs)).not.toContain(TOKEN);
  });

  it('reports an unreachable agent as RegistryUnavailableError', async () => {
    const stub = await startConsulStub();
    await stub.close();
    const registry = new ConsulRegistry({ address: stub.url, token: TOKEN, env: {} });
    registries.push(registry);
    const err = await rejection(registry.list('web'));
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(err.message).not.toContain(TOKEN);
  });

  it('retries a call once when the connection is reset before any answer (stale keep-alive socket)', async () => {
    let n = 0;
    const { stub, registry } = await setup(() => (++n === 1 ? 'reset' : {}));
    await registry.heartbeat('web-1');
    expect(stub.requests.map((r) => r.path)).toEqual([
      '/v1/agent/check/pass/service:web-1:ttl',
      '/v1/agent/check/pass/service:web-1:ttl',
    ]);
    stub.setHandler(() => 'reset');
    await expect(registry.deregister('web-1')).rejects.toBeInstanceOf(RegistryUnavailableError);
    expect(stub.matching('/v1/agent/service/deregister/')).toHaveLength(2);
  });

  it('fails a call that gets no answer within requestTimeoutMs as unavailable', async () => {
    const { registry } = await setup(() => 'hang', { requestTimeoutMs: 150 });
    const err = await rejection(registry.list('web'));
    expect(err).toBeInstanceOf(RegistryUnavailableError);
    expect(err.message).toContain('no answer within 150 ms');
  });

  it("aborts a call when the caller's signal fires, dropping the request", async () => {
    const { stub, registry } = await setup(() => 'hang');
    const controller = new AbortController();
    const pending = registry.list('web', { signal: controller.signal });
    await waitUntil(() => stub.requests.length === 1, 2_000, 'the request');
    controller.abort(new Error('caller gave up'));
    const err = await rejection(pending);
    expect(err).toBeInstanceOf(AbortedError);
    await waitUntil(() => stub.requests[0]!.abortedAt !== undefined, 2_000, 'the stub to see the request dropped');
    await expect(registry.heartbeat('web-1', { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError);
  });

  it('close() rejects in-flight and later calls with ClosedError and refuses new watches', async () => {
    const { stub, registry } = await setup(() => 'hang');
    const pending = registry.register(instance, { ttlMs: 1_000 });
    await waitUntil(() => stub.requests.length === 1, 2_000, 'the request');
    await registry.close();
    await expect(pending).rejects.toBeInstanceOf(ClosedError);
    await expect(registry.list('web')).rejects.toBeInstanceOf(ClosedError);
    await expect(registry.heartbeat('web-1')).rejects.toMatchObject({ code: 'PEERLB_CLOSED' });
    expect(() => registry.watch('web', () => {})).toThrow(ClosedError);
    await expect(registry.close()).resolves.toBeUndefined();
  });
});
