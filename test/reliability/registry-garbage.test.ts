import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, undiciPoolFactory, type Client, type TransportFactory } from '@peerlb/client';
import { ConsulRegistry, silentLogger, type RegistryLogger } from '@peerlb/registry';
import { startConsulDouble, type ConsulDouble } from '../support/consul-double.js';
import { MODE, reportFigures } from './support/mode.js';
import { startInProcessLoad } from './support/load.js';
import { sleep, waitFor } from './support/processes.js';
import { startGarblingProxy, startPeer, startTrap, type GarblingProxy, type JunkAnswer, type Peer, type Trap } from './support/servers.js';

// A registry answering garbage under load: entries that are invalid in every way a Consul health
// entry can be (pointed at a trap that counts connections), then whole answers that are not
// Consul answers at all. Nothing invalid is dialled, no request fails, the last good list is served.

const NODE = { ID: 'n1', Node: 'double-node', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} };
const PASSING = [{ Node: 'double-node', CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' }];

/** Health entries for `service` that must all be dropped, every one of them pointing at `port`. */
export function invalidEntries(service: string, port: number): unknown[] {
  const entry = (id: string, fields: Record<string, unknown>, node: Record<string, unknown> = NODE) => ({
    Node: node,
    Service: { ID: id, Service: service, Address: '127.0.0.1', Port: port, Tags: [], Meta: {}, ...fields },
    Checks: PASSING,
  });
  return [
    entry('bad-scheme-ftp', { Meta: { scheme: 'ftp' } }),
    entry('bad-scheme-file', { Meta: { scheme: 'file' } }),
    entry('bad-scheme-upper', { Meta: { scheme: 'HTTP ' } }),
    entry('bad-port-0', { Port: 0 }),
    entry('bad-port-high', { Port: 65_536 }),
    entry('bad-port-neg', { Port: -port }),
    entry('bad-port-float', { Port: port + 0.5 }),
    entry('bad-port-string', { Port: String(port) }),
    entry('bad-addr-url', { Address: `http://127.0.0.1:${port}/` }),
    entry('bad-addr-port', { Address: `127.0.0.1:${port}` }),
    entry('bad-addr-quad', { Address: '127.0.0.999' }),
    entry('bad-addr-space', { Address: '127.0.0.1 ' }),
    entry('bad-addr-bracket', { Address: '[::1]' }),
    entry('bad-addr-path', { Address: '127.0.0.1/x' }),
    entry('bad-addr-empty', { Address: '' }, { ...NODE, Address: '' }),
    entry('bad-addr-crlf', { Address: '127.0.0.1\r\nHost: evil' }),
    entry('bad/id', {}),
    entry('bad-tag', { Tags: ['ok', 'line\nbreak'] }),
    entry('bad-meta', { Meta: { k: 'v\r\nx-injected: 1' } }),
    entry('bad-meta-key', { Meta: { 'bad key': 'v' } }),
    entry('wrong-service', { Service: `${service}-other` }),
    { Node: NODE, Service: null, Checks: PASSING },
    { Node: NODE, Checks: PASSING },
    'a string',
    42,
    null,
  ];
}

describe('a registry answering garbage, under load', () => {
  let double: ConsulDouble;
  let trap: Trap;
  let proxy: GarblingProxy;
  const peers: Peer[] = [];
  const registries: ConsulRegistry[] = [];
  const clients: Client[] = [];
  const dialled: string[] = [];
  const recording: TransportFactory = (origin, options) => {
    dialled.push(origin);
    return undiciPoolFactory(origin, options);
  };
  const warnings: string[] = [];
  const logger: RegistryLogger = { warn: (m) => void (warnings.length < 500 && warnings.push(m)) };

  beforeAll(async () => {
    double = await startConsulDouble({ minCheckIntervalMs: 100 });
    trap = await startTrap();
    proxy = await startGarblingProxy(double.port);
    const admin = new ConsulRegistry({ address: double.url, logger: silentLogger, env: {} });
    registries.push(admin);
    for (let i = 0; i < 3; i++) {
      const peer = await startPeer();
      peers.push(peer);
      for (const service of ['garbage-entries', 'garbage-answers']) {
        await admin.register({ id: `${service}-${i}`, service, address: '127.0.0.1', port: peer.port }, { ttlMs: 600_000 });
        await admin.heartbeat(`${service}-${i}`);
      }
    }
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(registries.map((r) => r.close()));
    await Promise.all(peers.map((p) => p.close()));
    await proxy?.close();
    await trap?.close();
    await double?.close();
  });

  function client(address: string): Client {
    const registry = new ConsulRegistry({ address, waitMs: 2_000, backoff: { minMs: 50, maxMs: 500 }, logger, env: {} });
    registries.push(registry);
    const c = createClient({
      registry,
      logger,
      transportFactory: recording,
      discovery: { maxStalenessMs: MODE.outageMs + 60_000 },
    });
    clients.push(c);
    return c;
  }

  it('invalid entries are dropped and never dialled; the valid peers keep serving', async () => {
    const service = 'garbage-entries';
    const c = client(double.url);
    const load = startInProcessLoad(c, service, { maxMs: MODE.outageMs + 30_000 });
    await waitFor(() => load.ok > 20, 10_000, 'the load to start');
    for (const entry of invalidEntries(service, trap.port)) double.injectRawEntry(service, entry);
    await waitFor(() => warnings.some((w) => w.includes('bad-scheme-ftp') || w.includes('scheme')), 10_000, 'the entries to be read and dropped', () => JSON.stringify(warnings.slice(0, 5)));
    const until = Date.now() + Math.min(MODE.outageMs, 4_000);
    await waitFor(() => Date.now() > until, MODE.outageMs + 10_000, 'load with the junk listed');
    await load.stop();
    const stats = c.stats().services[service]!;
    reportFigures('garbage/entries', { requests: load.sent, failed: load.failures.length, trapConnections: trap.connections, dropped: warnings.length });
    expect(load.failures).toEqual([]);
    expect(trap.connections).toBe(0);
    expect(stats.peers.map((p) => p.id).sort()).toEqual(['garbage-entries-0', 'garbage-entries-1', 'garbage-entries-2']);
    expect(dialled.every((o) => peers.some((p) => o === `http://127.0.0.1:${p.port}`))).toBe(true);
  }, MODE.testTimeoutMs(MODE.outageMs + 30_000));

  it('whole answers that are not Consul answers: no request fails, the last good list is served, then refreshed', async () => {
    const service = 'garbage-answers';
    const c = client(proxy.url);
    const load = startInProcessLoad(c, service, { maxMs: MODE.outageMs + 60_000 });
    await waitFor(() => load.ok > 20, 10_000, 'the load to start');
    const json = (status: number, headers: Record<string, string>, body: string): JunkAnswer => (_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(body);
    };
    const invalid = JSON.stringify(invalidEntries(service, trap.port));
    const junk: JunkAnswer[] = [
      json(200, { 'x-consul-index': '50' }, '<html>not json</html>'),
      json(200, { 'x-consul-index': 'abc' }, '[]'),
      json(200, {}, invalid),
      json(200, { 'x-consul-index': '0' }, '[]'),
      json(200, { 'x-consul-index': '51' }, '{"an":"object"}'),
      json(200, { 'x-consul-index': '52' }, invalid),
      json(500, { 'x-consul-index': '53' }, 'rpc error: no leader'),
      json(200, { 'x-consul-index': '54' }, '[{"Node":'),
      json(200, { 'x-consul-index': '99999999999999999999' }, 'null'),
      json(200, { 'x-consul-index': '55' }, invalid),
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-consul-index': '56', 'content-length': '1000' });
        res.write('[{"Node":{}');
        setTimeout(() => res.destroy(), 5);
      },
      (req) => req.socket.destroy(),
    ];
    proxy.junk = junk;
    const junkAt = Date.now();
    await waitFor(async () => c.stats().services[service]?.stale === true, 15_000, 'the client to report its cache stale');
    await sleep(Math.max(0, MODE.outageMs - (Date.now() - junkAt)));
    // Every kind of junk answered at least once (the watch backs off between errors).
    await waitFor(() => proxy.junkServed >= junk.length, 30_000, 'every junk answer to be served');
    const during = c.stats().services[service]!;
    proxy.junk = undefined;
    await waitFor(() => c.stats().services[service]?.stale === false, 20_000, 'the client to leave the stale state');
    await sleep(500);
    await load.stop();
    reportFigures('garbage/answers', { requests: load.sent, failed: load.failures.length, junkAnswers: proxy.junkServed, trapConnections: trap.connections });
    expect(load.failures).toEqual([]);
    expect(proxy.junkServed).toBeGreaterThanOrEqual(junk.length);
    expect(during.stale).toBe(true);
    expect(during.eligiblePeers).toBe(3);
    expect(trap.connections).toBe(0);
    expect(c.stats().services[service]!.eligiblePeers).toBe(3);
  }, MODE.testTimeoutMs(MODE.outageMs + 30_000));
});
