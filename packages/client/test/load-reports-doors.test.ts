import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryRegistry, silentLogger } from '@peerlb/registry';
import { createClient, LOAD_REPORT_HEADER, type Client } from '../src/index.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function reportingServer(value: string): Promise<number> {
  const server: Server = createServer((_req, res) => {
    res.setHeader(LOAD_REPORT_HEADER, value);
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return (server.address() as AddressInfo).port;
}

async function clientFor(port: number, options: { loadReports?: false } = {}): Promise<Client> {
  const registry = new MemoryRegistry({
    logger: silentLogger,
    instances: [{ id: 'a', service: 'svc', address: '127.0.0.1', port, tags: [], meta: {} }],
  });
  const client = createClient({ registry, logger: silentLogger, ...options });
  cleanups.push(() => registry.close());
  cleanups.push(() => client.close());
  return client;
}

describe('load reports through both front doors (issue 14)', () => {
  it('client.request() keeps the peer\'s last report', async () => {
    const client = await clientFor(await reportingServer('TEXT application_utilization=0.300, named_metrics.inflight=2'));
    const res = await client.request({ service: 'svc', path: '/' });
    await res.body.text();
    expect(client.stats().services.svc!.peers[0]!.loadReport).toMatchObject({ utilization: 0.3, inflight: 2, expired: false });
  });

  it('client.dispatcher() keeps it too', async () => {
    const client = await clientFor(await reportingServer('JSON {"application_utilization": 0.6}'));
    const res = await request('http://svc/', { dispatcher: client.dispatcher() });
    await res.body.text();
    expect(client.stats().services.svc!.peers[0]!.loadReport).toMatchObject({ utilization: 0.6 });
  });

  it('loadReports: false ignores them', async () => {
    const client = await clientFor(await reportingServer('TEXT application_utilization=0.300'), { loadReports: false });
    const res = await client.request({ service: 'svc', path: '/' });
    await res.body.text();
    expect(client.stats().services.svc!.peers[0]!.loadReport).toBeUndefined();
  });
});
