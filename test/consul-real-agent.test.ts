import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsulRegistry, type ConsulRegistryOptions, type RegistryLogger, type WatchUpdate } from '@peerlb/registry';
import { newToken, startDevAgent, type DevAgent } from './support/consul-agent.js';
import { waitFor } from './support/wait.js';

// Each divergence issue 11 found between our agent double and a real Consul agent (1.8.7, the
// Debian bullseye binary scripts/consul.sh fetches), shown against that real agent. One agent
// with ACLs off and one with ACLs on (default deny) serve the whole file.

let plain: DevAgent;
let secured: DevAgent;
const TOKEN = newToken();
const opened: ConsulRegistry[] = [];

beforeAll(async () => {
  [plain, secured] = await Promise.all([startDevAgent(), startDevAgent({ aclToken: TOKEN })]);
});
afterAll(async () => {
  await Promise.all(opened.splice(0).map((r) => r.close()));
  await Promise.all([plain?.close(), secured?.close()]);
});

function open(agent: DevAgent, options: ConsulRegistryOptions = {}) {
  const lines: string[] = [];
  const logger: RegistryLogger = { warn: (message) => lines.push(message) };
  const registry = new ConsulRegistry({
    address: agent.url,
    ...(agent === secured ? { token: TOKEN } : {}),
    waitMs: 5_000,
    backoff: { minMs: 50, maxMs: 500 },
    logger,
    env: {},
    ...options,
  });
  opened.push(registry);
  return { registry, lines };
}

async function agentApi(agent: DevAgent, method: string, path: string, body?: unknown, token = agent === secured ? TOKEN : undefined) {
  const res = await fetch(`${agent.url}${path}`, {
    method,
    headers: token === undefined ? {} : { 'X-Consul-Token': token },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

let seq = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++seq}`;

describe('real Consul 1.8.7: divergences from the double, fixed', () => {
  it.each([
    ['without ACLs (the agent answers 200)', () => plain],
    ['with ACLs (the agent answers 500 "Unknown service")', () => secured],
  ])('deregistering an unknown service is done, %s', async (_label, agent) => {
    const { registry } = open(agent());
    await expect(registry.deregister(unique('never-registered'))).resolves.toBeUndefined();
  });

  it('re-registering with fewer checks drops the old one (replace-existing-checks)', async () => {
    const { registry } = open(plain);
    const service = unique('recheck');
    const inst = { id: `${service}-1`, service, address: '127.0.0.1', port: 9 };
    await registry.register(inst, { ttlMs: 30_000, http: { path: '/health', intervalMs: 10_000 } });
    const checksOf = async () =>
      Object.values((await agentApi(plain, 'GET', '/v1/agent/checks')) as Record<string, { ServiceID: string; CheckID: string }>)
        .filter((c) => c.ServiceID === inst.id)
        .map((c) => c.CheckID)
        .sort();
    expect(await checksOf()).toEqual([`service:${inst.id}:http`, `service:${inst.id}:ttl`]);
    await registry.register(inst, { ttlMs: 30_000 });
    expect(await checksOf()).toEqual([`service:${inst.id}:ttl`]);
    // With the failing HTTP check gone, one passing heartbeat is enough to be served.
    await registry.heartbeat(inst.id);
    expect((await registry.list(service)).map((i) => i.id)).toEqual([inst.id]);
  });

  it('deregisterCriticalAfterMs below Consul\'s 1 minute minimum is raised, with one warning giving the real timing', async () => {
    const { registry, lines } = open(plain);
    const service = unique('reap');
    for (const n of [1, 2]) {
      await registry.register({ id: `${service}-${n}`, service, address: '127.0.0.1', port: 9 }, { ttlMs: 5_000, deregisterCriticalAfterMs: 10_000 });
    }
    const warnings = lines.filter((l) => l.includes('deregisterCriticalAfterMs'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/raised to 60000 ms .* 60 to 90 s/);
  });

  it('meta Consul refuses (reserved prefix, more than 64 pairs) is a permanent InvalidOptionsError naming the field, and nothing is registered', async () => {
    const { registry } = open(plain);
    const service = unique('badmeta');
    const inst = { id: `${service}-1`, service, address: '127.0.0.1', port: 9 };
    await expect(registry.register({ ...inst, meta: { 'consul-version': '1' } }, { ttlMs: 5_000 })).rejects.toMatchObject({
      code: 'PEERLB_INVALID_OPTIONS',
      field: 'instance.meta.consul-version',
    });
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v']));
    await expect(registry.register({ ...inst, meta: many }, { ttlMs: 5_000 })).rejects.toMatchObject({ field: 'instance.meta' });
    const services = (await agentApi(plain, 'GET', '/v1/agent/services')) as Record<string, unknown>;
    expect(Object.hasOwn(services, inst.id)).toBe(false);
  });

  it('entries other tools write: "_nomad-task-" ids, empty tags and no meta are served; port 0 is dropped with one warning', async () => {
    const service = unique('tool');
    const nomadId = `_nomad-task-${newToken()}-group-web-web-http`;
    await agentApi(plain, 'PUT', '/v1/agent/service/register', {
      ID: nomadId, Name: service, Address: '127.0.0.1', Port: 8080, Tags: ['', 'web'], Check: { TTL: '60s', Status: 'passing' },
    });
    await agentApi(plain, 'PUT', '/v1/agent/service/register', {
      ID: `${service}-zero`, Name: service, Address: '127.0.0.1', Port: 0, Check: { TTL: '60s', Status: 'passing' },
    });
    const { registry, lines } = open(plain);
    const updates: WatchUpdate[] = [];
    const watch = registry.watch(service, (u) => updates.push(u));
    await waitFor(() => updates.some((u) => u.ok && u.instances.length > 0), 5_000, 'the valid entry');
    // More reads of the same answer (the other service's churn wakes the blocking query).
    for (let i = 0; i < 5; i++) {
      await registry.list(service);
      await agentApi(plain, 'PUT', `/v1/agent/check/pass/service:${nomadId}`);
    }
    watch.close();
    expect(updates.find((u) => u.ok)).toMatchObject({ instances: [{ id: nomadId, service, port: 8080, tags: ['web'], meta: {} }] });
    expect(updates.every((u) => u.ok)).toBe(true);
    expect(lines.filter((l) => l.includes('dropped'))).toHaveLength(1);
    expect(lines[0]).toMatch(/port/);
  });

  it('a service whose every entry is unusable is empty to a watch, not an endless error', async () => {
    const service = unique('allbad');
    await agentApi(plain, 'PUT', '/v1/agent/service/register', {
      ID: `${service}-zero`, Name: service, Address: '127.0.0.1', Port: 0, Check: { TTL: '60s', Status: 'passing' },
    });
    const { registry } = open(plain);
    const updates: WatchUpdate[] = [];
    const watch = registry.watch(service, (u) => updates.push(u));
    await waitFor(() => updates.length > 0, 5_000, 'the first update');
    watch.close();
    expect(updates[0]).toMatchObject({ ok: true, instances: [] });
  });

  it('a token without service:read (an empty answer, not an error) is explained once', async () => {
    await agentApi(secured, 'PUT', '/v1/acl/policy', { Name: `nodes-only-${process.pid}`, Rules: 'node_prefix "" { policy = "read" }' });
    const limited = ((await agentApi(secured, 'PUT', '/v1/acl/token', { Policies: [{ Name: `nodes-only-${process.pid}` }] })) as { SecretID: string }).SecretID;
    const service = unique('hidden');
    const { registry: writer } = open(secured);
    await writer.register({ id: `${service}-1`, service, address: '127.0.0.1', port: 9 }, { ttlMs: 30_000 });
    await writer.heartbeat(`${service}-1`);
    expect(await writer.list(service)).toHaveLength(1);

    const { registry: reader, lines } = open(secured, { token: limited });
    const { registry: manager, lines: managerLines } = open(secured);
    for (const r of [reader, manager]) {
      const updates: WatchUpdate[] = [];
      const w = r.watch(service, (u) => updates.push(u));
      await waitFor(() => updates.length > 0, 5_000, 'the first update');
      w.close();
    }
    await waitFor(() => lines.some((l) => l.includes('service:read')), 5_000, 'the explanation');
    // Hidden instances look like none: that is what the warning is for.
    expect(await reader.list(service)).toEqual([]);
    expect(lines.filter((l) => l.includes('service:read'))).toHaveLength(1);
    expect(lines.join('\n')).not.toContain(limited);
    expect(managerLines.filter((l) => l.includes('service:read'))).toHaveLength(0);
  });

  it('register() resolves once the catalog shows the instance: a list right after finds it', async () => {
    const { registry } = open(secured);
    const service = unique('confirm');
    await registry.register({ id: `${service}-1`, service, address: '127.0.0.1', port: 9 }, { ttlMs: 30_000 });
    await registry.heartbeat(`${service}-1`);
    expect((await registry.list(service)).map((i) => i.id)).toEqual([`${service}-1`]);
  });
});
