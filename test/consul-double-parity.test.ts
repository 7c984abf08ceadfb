import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDevAgent, type DevAgent } from './support/consul-agent.js';
import { startConsulDouble, type ConsulDouble } from './support/consul-double.js';

// Where the agent double and a real agent (1.8.7) disagree, the real agent wins. The same
// requests go to both, and the answers are compared field by field (indexes, node identity and
// the Connect/Proxy fields the double does not model left out). Deliberate differences, listed in
// the double's header, are not compared here: sub-second check intervals and sub-minute reaping
// (test speed), and deregistering an unknown id (the double answers 404, as current Consul does).

let agent: DevAgent;
let double: ConsulDouble;

beforeAll(async () => {
  [agent, double] = await Promise.all([startDevAgent(), startConsulDouble()]);
});
afterAll(async () => {
  await Promise.all([agent?.close(), double?.close()]);
});

type Target = { label: string; url: string };
const both = (): Target[] => [
  { label: 'real', url: agent.url },
  { label: 'double', url: double.url },
];

async function call(t: Target, method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`${t.url}${path}`, { method, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, text: await res.text() };
}

/** What a health answer says, without what differs by nature (indexes, node identity, Connect). */
async function health(t: Target, query: string): Promise<unknown> {
  const { status, text } = await call(t, 'GET', `/v1/health/service/${query}`);
  if (status !== 200) return { status, text };
  return (JSON.parse(text) as Array<{ Service: Record<string, unknown>; Checks: Array<Record<string, unknown>> }>)
    .map((e) => ({
      Service: {
        ID: e.Service.ID,
        Service: e.Service.Service,
        Tags: e.Service.Tags,
        Address: e.Service.Address,
        Meta: e.Service.Meta,
        Port: e.Service.Port,
        Weights: e.Service.Weights,
      },
      Checks: e.Checks.map((c) => ({ CheckID: c.CheckID, Status: c.Status, ServiceID: c.ServiceID, Output: c.CheckID === 'serfHealth' ? '-' : c.Output })),
    }))
    .sort((a, b) => String(a.Service.ID).localeCompare(String(b.Service.ID)));
}

/** Runs `scenario` on both and expects equal results. */
async function same(scenario: (t: Target) => Promise<unknown>): Promise<void> {
  const [real, fake] = await Promise.all(both().map(scenario));
  expect(fake).toEqual(real);
}

let seq = 0;
const name = () => `parity-${process.pid}-${++seq}`;

describe('the Consul double answers as a real agent 1.8.7 does', () => {
  it('registrations with no meta, empty tags, port 0, and meta given as {}; the catalog view of the node', async () => {
    const service = name();
    await same(async (t) => {
      const passing = { TTL: '30s', Status: 'passing' };
      const writes = [
        await call(t, 'PUT', '/v1/agent/service/register', { ID: `${service}-a`, Name: service, Port: 80, Check: passing }),
        await call(t, 'PUT', '/v1/agent/service/register', { ID: `${service}-b`, Name: service, Port: 0, Tags: ['', 'x'], Meta: {}, Check: passing }),
        await call(t, 'PUT', '/v1/agent/service/register', { Name: `${service}-c`, Address: '10.1.2.3', Port: 1, Meta: { k: 'v' }, Check: passing }),
      ];
      const self = JSON.parse((await call(t, 'GET', '/v1/agent/self')).text) as { Config: { NodeName: string } };
      const node = JSON.parse((await call(t, 'GET', `/v1/catalog/node/${self.Config.NodeName}`)).text) as { Services: Record<string, unknown> };
      const unknownNode = (await call(t, 'GET', '/v1/catalog/node/no-such-node')).text.trim();
      return {
        writes,
        a: await health(t, `${service}?passing`),
        c: await health(t, `${service}-c?passing`),
        onNode: Object.keys(node.Services).filter((id) => id.startsWith(service)).sort(),
        unknownNode,
      };
    });
  });

  it('checks start critical; warn is not passing; tag filters, an empty tag included', async () => {
    const service = name();
    await same(async (t) => {
      await call(t, 'PUT', '/v1/agent/service/register', { ID: `${service}-1`, Name: service, Port: 80, Tags: ['blue'], Check: { CheckID: `${service}-ttl`, TTL: '30s' } });
      const fresh = await health(t, `${service}?passing`);
      await call(t, 'PUT', `/v1/agent/check/warn/${service}-ttl?note=slow`);
      const warned = await health(t, `${service}?passing`);
      await call(t, 'PUT', `/v1/agent/check/pass/${service}-ttl?note=ok`);
      return { fresh, warned, all: await health(t, service), blue: await health(t, `${service}?passing&tag=blue`), empty: await health(t, `${service}?passing&tag=`), red: await health(t, `${service}?passing&tag=red`) };
    });
  });

  it('re-registering with replace-existing-checks drops the checks left out; without it they stay', async () => {
    const service = name();
    await same(async (t) => {
      const checks = [
        { CheckID: `${service}-a`, TTL: '30s', Status: 'passing' },
        { CheckID: `${service}-b`, TTL: '30s', Status: 'passing' },
      ];
      await call(t, 'PUT', '/v1/agent/service/register', { ID: `${service}-1`, Name: service, Port: 80, Checks: checks });
      await call(t, 'PUT', '/v1/agent/service/register', { ID: `${service}-1`, Name: service, Port: 80, Checks: [checks[0]] });
      const kept = await health(t, service);
      await call(t, 'PUT', '/v1/agent/service/register?replace-existing-checks=true', { ID: `${service}-1`, Name: service, Port: 80, Checks: [checks[0]] });
      return { kept, replaced: await health(t, service) };
    });
  });

  it('refuses the same registrations with 400', async () => {
    await same(async (t) => {
      const refused = [
        { Name: 'x', Port: 80, Meta: { 'consul-x': 'y' } },
        { Name: 'x', Port: 80, Check: { TTL: '10s', Interval: '10s', HTTP: 'http://127.0.0.1:1/' } },
      ];
      return Promise.all(refused.map(async (body) => (await call(t, 'PUT', '/v1/agent/service/register', body)).status));
    });
  });
});
