import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client } from '@peerlb/client';
import { ConsulRegistry, silentLogger, type ConsulRegistryOptions, type WatchUpdate } from '@peerlb/registry';
import { startCluster, type ConsulAgent, type ConsulCluster } from './support/consul-agent.js';
import { sleep, waitFor } from './support/wait.js';

// A real Consul 1.8.7 cluster on one machine: 3 servers and 3 client agents, each on its own
// 127.x address. Instances register through client-1 and client-2 (and a server, for a third
// copy of one id); callers watch through client-3. The tests share the cluster and run in order:
// the last ones stop servers and kill an agent.

let cluster: ConsulCluster;
const registries: ConsulRegistry[] = [];
const servers: Server[] = [];
let client: Client | undefined;
const heartbeats: NodeJS.Timeout[] = [];

beforeAll(async () => {
  cluster = await startCluster({ servers: 3, clients: 3 });
}, 60_000);

afterAll(async () => {
  for (const t of heartbeats) clearInterval(t);
  await client?.close();
  await Promise.all(registries.map((r) => r.close()));
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await cluster?.close();
});

const agent = (name: string): ConsulAgent => [...cluster.servers, ...cluster.clients].find((a) => a.name === name)!;

function registryAt(name: string, options: ConsulRegistryOptions = {}): ConsulRegistry {
  const r = new ConsulRegistry({ address: agent(name).url, waitMs: 10_000, backoff: { minMs: 50, maxMs: 500 }, logger: silentLogger, env: {}, ...options });
  registries.push(r);
  return r;
}

/** An upstream that answers every request with its own name and counts them. */
async function upstream(name: string): Promise<{ port: number; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { port: (server.address() as AddressInfo).port, hits: () => hits };
}

/** Registers with a TTL check kept passing every second from this process, as an instance does. */
async function registerLive(registry: ConsulRegistry, inst: { id: string; service: string; port: number }): Promise<void> {
  await registry.register({ ...inst, address: '127.0.0.1' }, { ttlMs: 10_000 });
  await registry.heartbeat(inst.id);
  heartbeats.push(setInterval(() => void registry.heartbeat(inst.id).catch(() => {}), 1_000));
}

/** Steady GETs through the client from 4 loops; counts answers and failures per upstream name. */
function load(c: Client, service: string) {
  const byName = new Map<string, number>();
  const failures: string[] = [];
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      try {
        const res = await c.request({ service, path: '/' });
        const name = await res.body.text();
        byName.set(name, (byName.get(name) ?? 0) + 1);
      } catch (err) {
        failures.push(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
      }
      await sleep(5);
    }
  });
  const count = (name: string) => byName.get(name) ?? 0;
  return {
    byName,
    failures,
    count,
    /** Each of `names` answers 20 more requests (a loaded machine may pause the loops for a while). */
    async keepsServing(names: string[]) {
      const before = names.map(count);
      await waitFor(() => names.every((n, i) => count(n) >= before[i]! + 20), 15_000, `more traffic on ${names.join(', ')}`, () =>
        JSON.stringify([...byName]),
      );
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('a real Consul cluster (3 servers, 3 client agents)', () => {
  it('shows an instance registered through one client agent to a watcher on another within 1 s, and its removal too', async () => {
    const writer = registryAt('client-1');
    const reader = registryAt('client-3');
    const service = `across-${process.pid}`;
    const updates: Array<{ at: number; ids: string[] }> = [];
    const watch = reader.watch(service, (u: WatchUpdate) => {
      if (u.ok) updates.push({ at: performance.now(), ids: u.instances.map((i) => i.id) });
    });
    await waitFor(() => updates.length > 0, 5_000, 'the first (empty) answer');
    await writer.register({ id: `${service}-1`, service, address: '127.0.0.1', port: 9 }, { ttlMs: 10_000 });
    const passingAt = performance.now();
    await writer.heartbeat(`${service}-1`);
    await waitFor(() => updates.some((u) => u.ids.includes(`${service}-1`)), 5_000, 'the instance on the other agent');
    expect(updates.find((u) => u.ids.includes(`${service}-1`))!.at - passingAt).toBeLessThanOrEqual(1_000);

    const goneAt = performance.now();
    await writer.deregister(`${service}-1`);
    await waitFor(() => updates.at(-1)!.ids.length === 0, 5_000, 'the removal on the other agent');
    expect(updates.at(-1)!.at - goneAt).toBeLessThanOrEqual(1_000);
    watch.close();
  });

  const service = `dup-${process.pid}`;
  let a: Awaited<ReturnType<typeof upstream>>;
  let b: Awaited<ReturnType<typeof upstream>>;

  it('the same Service.ID on two nodes: both get traffic; a third joining and leaving black-holes nothing', async () => {
    [a, b] = await Promise.all([upstream('a'), upstream('b')]);
    const c = await upstream('c');
    // Consul ids are unique per agent only: every copy uses the id "web".
    await registerLive(registryAt('client-1'), { id: 'web', service, port: a.port });
    await registerLive(registryAt('client-2'), { id: 'web', service, port: b.port });
    client = createClient({ registry: registryAt('client-3'), timeoutMs: 5_000 });
    const traffic = load(client, service);
    try {
      await waitFor(() => traffic.count('a') > 50 && traffic.count('b') > 50, 15_000, 'traffic on both copies', () => JSON.stringify([...traffic.byName]));

      const third = registryAt('server-1');
      await registerLive(third, { id: 'web', service, port: c.port });
      await waitFor(() => traffic.count('c') > 20, 10_000, 'traffic on the third copy');
      await third.deregister('web');
      await waitFor(() => client!.stats().services[service]?.peers.length === 2, 5_000, 'the third copy to leave the peers');
      await traffic.keepsServing(['a', 'b']);
    } finally {
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
    expect(client.stats().services[service]!.peers.map((p) => p.id).sort()).toEqual(['web@client-1', 'web@client-2']);
  }, 60_000);

  it('without quorum, then with no server at all: callers serve the last list, marked stale, with 0 failed requests; registering is refused as not discoverable; all recovers', async () => {
    const traffic = load(client!, service);
    const late = registryAt('client-2', { requestTimeoutMs: 8_000 });
    const lateInstance = { id: 'late', service, address: '127.0.0.1', port: b.port };
    try {
      await waitFor(() => traffic.count('a') > 10, 10_000, 'traffic');
      await Promise.all([agent('server-2').kill(), agent('server-3').kill()]);
      await waitFor(() => client!.stats().services[service]?.stale === true, 20_000, 'the caller to mark its list stale');
      expect(String(client!.stats().services[service]!.lastError)).toMatch(/leader|500/i);
      // No catalog can take the write: not registered. The agent mostly accepts it (200) and the
      // catalog read says "not discoverable yet"; while its own sync with the servers holds its
      // state lock (up to the 7 s RPC hold time) the write itself gets no answer.
      await expect(late.register(lateInstance, { ttlMs: 30_000 })).rejects.toMatchObject({
        code: 'PEERLB_REGISTRY_UNAVAILABLE',
        message: expect.stringMatching(/not discoverable yet|no answer within/),
      });

      await agent('server-1').kill();
      // What the caller's agent answers now (its text varies as it notices: "rpc error ...", then
      // "No known Consul servers"); a 500 either way.
      const reads = await fetch(`${agent('client-3').url}/v1/health/service/${service}?passing`);
      expect(reads.status).toBe(500);
      await reads.text();
      await traffic.keepsServing(['a', 'b']);

      await Promise.all(cluster.servers.map((s) => s.start()));
      await cluster.settled(30_000);
      await waitFor(() => client!.stats().services[service]?.stale === false, 20_000, 'the caller to recover');
      // Registering again, as an instance does after a failure, now counts.
      await late.register(lateInstance, { ttlMs: 30_000 });
      await late.heartbeat('late');
      await waitFor(async () => (await late.list(service)).some((i) => i.id === 'late'), 10_000, 'the late instance in the catalog');
      await late.deregister('late');
    } finally {
      await traffic.stop();
      // Whatever failed above, the next test gets a whole cluster.
      await Promise.all(cluster.servers.map((s) => s.start()));
    }
    expect(traffic.failures).toEqual([]);
  }, 120_000);

  it('killing the client agent an instance registered through takes that instance out; the rest keeps serving', async () => {
    const traffic = load(client!, service);
    try {
      await waitFor(() => traffic.count('a') > 10 && traffic.count('b') > 10, 10_000, 'traffic on both');
      await agent('client-1').kill();
      await waitFor(
        () => client!.stats().services[service]?.peers.map((p) => p.id).join() === 'web@client-2' || client!.stats().services[service]?.peers.map((p) => p.id).join() === 'web',
        20_000,
        'the instance behind the dead agent to leave the peers',
        () => JSON.stringify(client!.stats().services[service]?.peers.map((p) => p.id)),
      );
      await traffic.keepsServing(['b']);
    } finally {
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
  }, 60_000);
});
