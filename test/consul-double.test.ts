import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsulDouble, type ConsulDouble, type ConsulDoubleOptions } from './support/consul-double.js';
import { formatGoDuration, parseGoDuration } from './support/go-duration.js';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function double(options: ConsulDoubleOptions = {}): Promise<ConsulDouble> {
  const d = await startConsulDouble({ minCheckIntervalMs: 50, reapIntervalMs: 20, ...options });
  cleanups.push(() => d.close());
  return d;
}

interface Reply {
  status: number;
  text: string;
  index: number;
  headers: Headers;
}

async function call(d: ConsulDouble, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Reply> {
  const res = await fetch(`${d.url}${path}`, {
    method,
    // A fresh connection per call: stop()/restart() drop pooled sockets, which a client must
    // survive by retrying; these tests are about the double, not that race.
    headers: { connection: 'close', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
  return { status: res.status, text: await res.text(), index: Number(res.headers.get('x-consul-index')), headers: res.headers };
}

const put = (d: ConsulDouble, path: string, body?: unknown, headers?: Record<string, string>) => call(d, 'PUT', path, body, headers);

interface HealthEntry {
  Node: { Node: string; Address: string };
  Service: { ID: string; Service: string; Address: string; Port: number; Tags: string[]; Meta: Record<string, string> };
  Checks: Array<{ CheckID: string; Status: string; Output: string; ServiceID: string; Type: string }>;
}

async function health(d: ConsulDouble, service: string, query = '', headers: Record<string, string> = {}): Promise<{ entries: HealthEntry[]; index: number; reply: Reply }> {
  const reply = await call(d, 'GET', `/v1/health/service/${service}${query}`, undefined, headers);
  expect(reply.status, reply.text).toBe(200);
  return { entries: JSON.parse(reply.text) as HealthEntry[], index: reply.index, reply };
}

async function agentChecks(d: ConsulDouble): Promise<Record<string, { Status: string; Output: string; ServiceID: string; Name: string }>> {
  return JSON.parse((await call(d, 'GET', '/v1/agent/checks')).text);
}

async function checkStatus(d: ConsulDouble, id: string): Promise<string | undefined> {
  return (await agentChecks(d))[id]?.Status;
}

/** Polls `probe` until it returns true, for at most `timeoutMs`. */
async function until(probe: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 15));
  }
}

async function target(): Promise<{ url: string; setCode(code: number): void; close(): Promise<void> }> {
  let code = 200;
  const server: Server = createServer((_req, res) => {
    res.statusCode = code;
    res.end(`answered ${code}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  cleanups.push(close);
  return { url: `http://127.0.0.1:${port}/health`, setCode: (c) => (code = c), close };
}

const ttlService = (id: string, name: string, extra: Record<string, unknown> = {}) => ({
  ID: id,
  Name: name,
  Port: 8080,
  Check: { TTL: '10s', ...extra },
});

describe('Go durations', () => {
  it('parses and formats like Go', () => {
    expect(parseGoDuration('10s')).toBe(10e9);
    expect(parseGoDuration('1m30s')).toBe(90e9);
    expect(parseGoDuration('500ms')).toBe(500e6);
    expect(parseGoDuration('1.5h')).toBe(5400e9);
    expect(parseGoDuration('0')).toBe(0);
    expect(() => parseGoDuration('10')).toThrow('time: missing unit in duration "10"');
    expect(() => parseGoDuration('abc')).toThrow('time: invalid duration "abc"');
    expect(() => parseGoDuration('5y')).toThrow('time: unknown unit "y" in duration "5y"');
    expect(formatGoDuration(90e9)).toBe('1m30s');
    expect(formatGoDuration(3600e9)).toBe('1h0m0s');
    expect(formatGoDuration(100e6)).toBe('100ms');
    expect(formatGoDuration(1.5e9)).toBe('1.5s');
  });
});

describe('Consul agent double', () => {
  it('registers a service and filters health with ?passing', async () => {
    const d = await double();
    expect((await put(d, '/v1/agent/service/register', ttlService('web-1', 'web', { Status: 'passing' }))).status).toBe(200);
    expect((await put(d, '/v1/agent/service/register', { ...ttlService('web-2', 'web'), Tags: ['blue'], Address: '10.0.0.2', Meta: { zone: 'a' } })).status).toBe(200);

    const all = await health(d, 'web');
    expect(all.entries.map((e) => e.Service.ID)).toEqual(['web-1', 'web-2']);
    const first = all.entries[0];
    expect(first?.Service).toMatchObject({ Service: 'web', Address: '', Port: 8080, Tags: [], Meta: {} });
    expect(first?.Node).toMatchObject({ Node: 'double-node', Address: '127.0.0.1' });
    expect(first?.Checks.map((c) => c.CheckID)).toEqual(['serfHealth', 'service:web-1']);
    expect(all.entries[1]?.Service).toMatchObject({ Address: '10.0.0.2', Tags: ['blue'], Meta: { zone: 'a' } });
    expect(all.index).toBeGreaterThanOrEqual(1);
    expect(all.reply.headers.get('x-consul-knownleader')).toBe('true');
    expect(all.reply.headers.get('x-consul-lastcontact')).toBe('0');

    for (const q of ['?passing', '?passing=true', '?passing=1']) {
      expect((await health(d, 'web', q)).entries.map((e) => e.Service.ID)).toEqual(['web-1']);
    }
    expect((await health(d, 'web', '?passing=false')).entries).toHaveLength(2);
    expect((await call(d, 'GET', '/v1/health/service/web?passing=maybe')).status).toBe(400);
    expect((await health(d, 'web', '?tag=blue')).entries.map((e) => e.Service.ID)).toEqual(['web-2']);
    expect((await health(d, 'web', '?tag=blue&tag=green')).entries).toEqual([]);
    const unknown = await health(d, 'nothing-here');
    expect(unknown.entries).toEqual([]);
    expect(unknown.index).toBeGreaterThanOrEqual(1);

    const services = JSON.parse((await call(d, 'GET', '/v1/agent/services')).text);
    expect(Object.keys(services).sort()).toEqual(['web-1', 'web-2']);
    expect(services['web-2']).toMatchObject({ ID: 'web-2', Service: 'web', Port: 8080 });
  });

  it('starts a new check critical unless Status is given', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('api-1', 'api'));
    expect(await checkStatus(d, 'service:api-1')).toBe('critical');
    expect((await health(d, 'api', '?passing')).entries).toEqual([]);
  });

  it('runs HTTP checks at their interval: 2xx passing, 429 warning, others and refused critical', async () => {
    const d = await double();
    const app = await target();
    const res = await put(d, '/v1/agent/service/register', { ID: 'h-1', Name: 'h', Port: 1, Check: { HTTP: app.url, Interval: '10ms', Timeout: '1s' } });
    expect(res.status).toBe(200);
    await until(async () => (await checkStatus(d, 'service:h-1')) === 'passing');
    expect((await agentChecks(d))['service:h-1']?.Output).toContain('200');
    expect((await health(d, 'h', '?passing')).entries).toHaveLength(1);

    app.setCode(429);
    await until(async () => (await checkStatus(d, 'service:h-1')) === 'warning');
    expect((await health(d, 'h', '?passing')).entries).toEqual([]);

    app.setCode(503);
    await until(async () => (await checkStatus(d, 'service:h-1')) === 'critical');
    app.setCode(204);
    await until(async () => (await checkStatus(d, 'service:h-1')) === 'passing');

    await app.close();
    await until(async () => (await checkStatus(d, 'service:h-1')) === 'critical');
    // A connection error, not an HTTP answer (refused, or reset when a probe raced the close).
    const output = (await agentChecks(d))['service:h-1']?.Output;
    expect(output).toMatch(/^Get "http:\/\/127\.0\.0\.1:\d+\/health": /);
    expect(output).not.toContain(' Output: ');
  });

  it('moves TTL checks with pass/warn/fail/update and expires them', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('t-1', 't'));
    expect((await put(d, '/v1/agent/check/pass/service:t-1?note=all%20good')).status).toBe(200);
    let check = (await agentChecks(d))['service:t-1'];
    expect(check).toMatchObject({ Status: 'passing', Output: 'all good' });
    await put(d, '/v1/agent/check/warn/service:t-1');
    expect(await checkStatus(d, 'service:t-1')).toBe('warning');
    await put(d, '/v1/agent/check/fail/service:t-1');
    expect(await checkStatus(d, 'service:t-1')).toBe('critical');
    expect((await put(d, '/v1/agent/check/update/service:t-1', { Status: 'passing', Output: 'fine' })).status).toBe(200);
    check = (await agentChecks(d))['service:t-1'];
    expect(check).toMatchObject({ Status: 'passing', Output: 'fine' });

    const badStatus = await put(d, '/v1/agent/check/update/service:t-1', { Status: 'ok' });
    expect(badStatus.status).toBe(400);
    const unknown = await put(d, '/v1/agent/check/pass/service:nope');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('Unknown check ID "service:nope"');
    expect((await call(d, 'GET', '/v1/agent/check/pass/service:t-1')).status).toBe(405);

    await put(d, '/v1/agent/service/register', ttlService('t-2', 't', { TTL: '150ms' }));
    await put(d, '/v1/agent/check/pass/service:t-2?note=last%20words');
    await until(async () => (await checkStatus(d, 'service:t-2')) === 'critical');
    expect((await agentChecks(d))['service:t-2']?.Output).toBe('TTL expired (last output before timeout follows): last words');
  });

  it('refuses TTL updates on an HTTP check', async () => {
    const d = await double();
    const app = await target();
    await put(d, '/v1/agent/service/register', { ID: 'x-1', Name: 'x', Check: { HTTP: app.url, Interval: '1s' } });
    const res = await put(d, '/v1/agent/check/pass/service:x-1');
    expect(res.status).toBe(500);
    expect(res.text).toBe('CheckID "service:x-1" does not have associated TTL');
  });

  it('names checks explicitly or service:<id>, service:<id>:<n> as Consul does', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', { ID: 'a-1', Name: 'a', Checks: [{ TTL: '10s' }, { TTL: '10s', Name: 'second' }] });
    await put(d, '/v1/agent/service/register', { ID: 'b-1', Name: 'b', Check: { TTL: '10s', CheckID: 'my-check' } });
    await put(d, '/v1/agent/service/register', { ID: 'c-1', Name: 'c', Checks: [{ TTL: '10s' }] });
    const checks = await agentChecks(d);
    expect(Object.keys(checks).sort()).toEqual(['my-check', 'service:a-1:1', 'service:a-1:2', 'service:c-1']);
    expect(checks['service:a-1:1']?.Name).toBe("Service 'a' check");
    expect(checks['service:a-1:2']?.Name).toBe('second');
    expect(checks['my-check']?.ServiceID).toBe('b-1');
  });

  it('answers 400 to bodies Consul rejects', async () => {
    const d = await double();
    const cases: Array<[unknown, string]> = [
      [{ Name: 'x', Check: { TTL: '10s', Interval: '10s', HTTP: 'http://127.0.0.1:1/' } }, 'Interval and TTL cannot both be specified'],
      [{ Name: 'x', Check: { TTL: 'ten seconds' } }, 'Request decode failed: time: invalid duration'],
      [{ Name: 'x', Check: { HTTP: 'http://127.0.0.1:1/' } }, 'Interval must be > 0'],
      [{ Name: 'x', Check: { Notes: 'no type' } }, 'TTL must be > 0 for TTL checks'],
      [{ Name: 'x', Check: { TCP: '127.0.0.1:1', Interval: '10s' } }, 'HTTP and TTL checks only'],
      [{ Name: 'x', Check: { TTL: '10s', Status: 'fine' } }, "Status for checks must 'passing', 'warning', 'critical'"],
      [{ ID: 'no-name' }, 'Missing service name'],
      [{ Name: 'x', Port: '80' }, 'Request decode failed'],
      [{ Name: 'x', Address: '0.0.0.0' }, 'Invalid service address'],
      ['{"Name":', 'Request decode failed'],
    ];
    for (const [body, message] of cases) {
      const res = await put(d, '/v1/agent/service/register', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.text).toContain(message);
    }
    expect(JSON.parse((await call(d, 'GET', '/v1/agent/services')).text)).toEqual({});
    // A bare number is nanoseconds, and lower-case keys decode as they do in Go.
    expect((await put(d, '/v1/agent/service/register', { name: 'ok', check: { ttl: 5e9 } })).status).toBe(200);
  });

  it('hides every instance from ?passing when the node check fails', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('n-1', 'n', { Status: 'passing' }));
    const before = await health(d, 'n', '?passing');
    expect(before.entries).toHaveLength(1);
    d.setNodeCheck('critical');
    const after = await health(d, 'n', '?passing');
    expect(after.entries).toEqual([]);
    expect(after.index).toBeGreaterThan(before.index);
    const all = await health(d, 'n');
    expect(all.entries[0]?.Checks.find((c) => c.CheckID === 'serfHealth')?.Status).toBe('critical');
    d.setNodeCheck('passing');
    expect((await health(d, 'n', '?passing')).entries).toHaveLength(1);
  });

  it('holds a blocking query until its service changes, and not for other services', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('b-1', 'blocky', { Status: 'passing' }));
    const { index } = await health(d, 'blocky', '?passing');
    let settled = false;
    const pending = health(d, 'blocky', `?passing&index=${index}&wait=5s`).finally(() => (settled = true));
    await until(async () => d.blockingQueries() === 1);
    await put(d, '/v1/agent/service/register', ttlService('o-1', 'other', { Status: 'passing' }));
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);

    await put(d, '/v1/agent/service/register', ttlService('b-2', 'blocky', { Status: 'passing' }));
    const changed = await pending;
    expect(changed.index).toBeGreaterThan(index);
    expect(changed.entries.map((e) => e.Service.ID)).toEqual(['b-1', 'b-2']);
    expect(d.blockingQueries()).toBe(0);

    // A pass that changes nothing is no new index.
    await put(d, '/v1/agent/check/pass/service:b-1');
    expect((await health(d, 'blocky')).index).toBe(changed.index);
  });

  it('answers a blocking query after wait with the same index', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('w-1', 'waity'));
    const { index } = await health(d, 'waity');
    const started = Date.now();
    const reply = await health(d, 'waity', `?index=${index}&wait=200ms`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(reply.index).toBe(index);
    expect(reply.entries).toHaveLength(1);
    expect((await call(d, 'GET', '/v1/health/service/waity?index=1&wait=soon')).status).toBe(400);
  });

  it('releases a blocking query whose client goes away', async () => {
    const d = await double();
    const { index } = await health(d, 'gone');
    const controller = new AbortController();
    const pending = call(d, 'GET', `/v1/health/service/gone?index=${index}&wait=30s`, undefined, {}, controller.signal);
    await until(async () => d.blockingQueries() === 1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await until(async () => d.blockingQueries() === 0);
  });

  it('enforces the ACL token like Consul and never echoes it', async () => {
    const secret = 's3cr3t-token-value';
    const d = await double({ token: secret });
    const noToken = await put(d, '/v1/agent/service/register', ttlService('s-1', 'sec'));
    expect(noToken.status).toBe(403);
    expect(noToken.text).toContain('Permission denied');
    const wrong = await put(d, '/v1/agent/service/register', ttlService('s-1', 'sec'), { 'X-Consul-Token': 'wrong' });
    expect(wrong.status).toBe(403);
    expect(wrong.text).toBe('ACL not found');
    expect((await call(d, 'GET', '/v1/health/service/sec', undefined, { 'X-Consul-Token': 'wrong' })).status).toBe(403);

    const ok = await put(d, '/v1/agent/service/register', ttlService('s-1', 'sec', { Status: 'passing' }), { 'X-Consul-Token': secret });
    expect(ok.status).toBe(200);
    expect((await health(d, 'sec', `?token=${secret}`)).entries).toHaveLength(1);
    expect((await health(d, 'sec', '', { Authorization: `Bearer ${secret}` })).entries).toHaveLength(1);
    // Anonymous reads are filtered, not refused, under default-deny.
    expect((await health(d, 'sec')).entries).toEqual([]);
    expect((await put(d, '/v1/agent/check/pass/service:s-1')).status).toBe(403);
    expect((await call(d, 'GET', '/v1/status/leader')).text).toBe('"127.0.0.1:8300"');
    for (const reply of [noToken, wrong, ok]) expect(reply.text).not.toContain(secret);
  });

  it('deregisters a service critical for longer than DeregisterCriticalServiceAfter', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('r-1', 'reap', { TTL: '100ms', DeregisterCriticalServiceAfter: '100ms', Status: 'passing' }));
    await put(d, '/v1/agent/service/register', ttlService('r-2', 'reap', { TTL: '10s', DeregisterCriticalServiceAfter: '100ms', Status: 'passing' }));
    const { index } = await health(d, 'reap');
    await until(async () => (await health(d, 'reap')).entries.length === 1);
    const after = await health(d, 'reap');
    expect(after.entries[0]?.Service.ID).toBe('r-2');
    expect(after.index).toBeGreaterThan(index);
    expect((await put(d, '/v1/agent/check/pass/service:r-1')).status).toBe(404);
  });

  it('deregisters on request, 404 for an unknown ID', async () => {
    const d = await double();
    // An earlier extinction must not hide the next one from a held query.
    await put(d, '/v1/agent/service/register', ttlService('e-1', 'earlier'));
    await put(d, '/v1/agent/service/deregister/e-1');
    await put(d, '/v1/agent/service/register', ttlService('d-1', 'dereg'));
    const before = await health(d, 'dereg');
    const held = health(d, 'dereg', `?index=${before.index}&wait=30s`);
    await until(async () => d.blockingQueries() === 1);
    expect((await put(d, '/v1/agent/service/deregister/d-1')).status).toBe(200);
    const after = await Promise.race([
      held,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the deregistration did not release the held query')), 3000)),
    ]);
    expect(after.entries).toEqual([]);
    expect(after.index).toBeGreaterThan(before.index);
    expect((await health(d, 'dereg')).index).toBe(after.index);
    expect(await agentChecks(d)).toEqual({});
    const unknown = await put(d, '/v1/agent/service/deregister/d-1');
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('Unknown service ID "d-1"');
    expect((await call(d, 'GET', '/v1/agent/service/deregister/d-1')).status).toBe(405);
    expect((await call(d, 'GET', '/v1/catalog/nodes')).status).toBe(404);
  });

  it('keeps check status when the same service is registered again', async () => {
    const d = await double();
    await put(d, '/v1/agent/service/register', ttlService('k-1', 'keep'));
    await put(d, '/v1/agent/check/pass/service:k-1');
    const before = await health(d, 'keep');
    await put(d, '/v1/agent/service/register', ttlService('k-1', 'keep'));
    expect(await checkStatus(d, 'service:k-1')).toBe('passing');
    expect((await health(d, 'keep')).index).toBe(before.index);
    await put(d, '/v1/agent/service/register', { ...ttlService('k-1', 'keep'), Tags: ['v2'] });
    const changed = await health(d, 'keep', '?passing');
    expect(changed.entries[0]?.Service.Tags).toEqual(['v2']);
    expect(changed.index).toBeGreaterThan(before.index);
  });

  it('serves injected raw entries as they are', async () => {
    const d = await double();
    const { index } = await health(d, 'raw');
    d.injectRawEntry('raw', { Service: { Address: 'not an address', Port: -1 } });
    const after = await health(d, 'raw', '?passing');
    expect(after.entries).toEqual([{ Service: { Address: 'not an address', Port: -1 } }]);
    expect(after.index).toBeGreaterThan(index);
  });

  it('forgets everything on restart and its index goes back', async () => {
    const d = await double();
    const port = d.port;
    for (let i = 0; i < 3; i++) await put(d, '/v1/agent/service/register', ttlService(`z-${i}`, 'zed', { Status: 'passing' }));
    const before = await health(d, 'zed');
    expect(before.entries).toHaveLength(3);
    await d.restart();
    expect(d.port).toBe(port);
    const after = await health(d, 'zed');
    expect(after.entries).toEqual([]);
    expect(after.index).toBeLessThan(before.index);
    expect(after.index).toBeGreaterThanOrEqual(1);
    expect((await put(d, '/v1/agent/check/pass/service:z-0')).status).toBe(404);
    expect(JSON.parse((await call(d, 'GET', '/v1/agent/services')).text)).toEqual({});
  });

  it('keeps its state across stop and start on the same port', async () => {
    const d = await double();
    const port = d.port;
    await put(d, '/v1/agent/service/register', ttlService('p-1', 'persist', { Status: 'passing' }));
    const { index } = await health(d, 'persist');
    const held = call(d, 'GET', `/v1/health/service/persist?index=${index}&wait=30s`);
    await until(async () => d.blockingQueries() === 1);
    await d.stop();
    await expect(held).rejects.toThrow();
    expect(d.blockingQueries()).toBe(0);
    await expect(fetch(`${d.url}/v1/status/leader`)).rejects.toThrow();
    await d.start();
    expect(d.port).toBe(port);
    const after = await health(d, 'persist', '?passing');
    expect(after.entries.map((e) => e.Service.ID)).toEqual(['p-1']);
    expect(after.index).toBe(index);
  });

  it('counts requests by path prefix', async () => {
    const d = await double();
    await health(d, 'count');
    await health(d, 'count');
    await call(d, 'GET', '/v1/agent/services');
    expect(d.requestCount('/v1/health/')).toBe(2);
    expect(d.requestCount()).toBe(3);
  });
});
