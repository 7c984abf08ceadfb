// One registry update may list two instances with the same id (Consul ids are unique per agent
// only; custom and memory registries do not check). Each endpoint is its own peer: both get
// traffic, and when one leaves it alone is retired, with no request failing.
import { afterEach, describe, expect, it } from 'vitest';
import { createClient, roundRobin, seededRandom, type Client, type PeerEvent } from '../src/index.js';
import { startPeer, TestRegistry, waitFor } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function send(client: Client, n: number): Promise<string[]> {
  const served: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await client.request({ service: 'api', path: '/' });
    served.push(String(res.headers['x-peer']));
    await res.body.dump();
  }
  return served;
}

describe('duplicate instance ids in one registry update', () => {
  it('both endpoints get traffic; when one leaves only it is retired and no request fails', async () => {
    const warnings: string[] = [];
    const logger = { warn: (message: string) => warnings.push(message) };
    const registry = new TestRegistry();
    cleanups.push(() => registry.close());
    const first = await startPeer('first');
    const second = await startPeer('second');
    cleanups.push(() => first.close(), () => second.close());
    // Same id, different ports: one fixed entry, one registration (removable on its own).
    registry.addStatic({ id: 'dup', service: 'api', address: '127.0.0.1', port: first.port });
    await registry.add('api', { id: 'dup', port: second.port });

    // Round robin: the question is whether each endpoint is a peer of its own, not how P2C shares
    // 60 sequential calls (which can leave one peer near 5 on a loaded machine).
    const client = createClient({ registry, logger, balancer: roundRobin(), random: seededRandom(3) });
    cleanups.push(() => client.close());
    const added: PeerEvent[] = [];
    const removed: PeerEvent[] = [];
    client.on('peer:added', (e) => added.push(e));
    client.on('peer:removed', (e) => removed.push(e));

    const served = await send(client, 60);
    expect(served.filter((p) => p === 'first').length).toBeGreaterThanOrEqual(25);
    expect(served.filter((p) => p === 'second').length).toBeGreaterThanOrEqual(25);
    const peers = client.stats().services['api']!.peers;
    expect(peers).toHaveLength(2);
    expect(new Set(peers.map((p) => p.id)).size).toBe(2);
    expect(new Set(peers.map((p) => p.port))).toEqual(new Set([first.port, second.port]));

    // Another update with the same duplicate: peers keep their identity, no second warning.
    const other = await startPeer('other');
    cleanups.push(() => other.close());
    await registry.add('api', { id: 'other', port: other.port });
    await waitFor(() => client.stats().services['api']!.peers.length === 3);
    expect(added).toHaveLength(3);
    expect(removed).toHaveLength(0);
    expect(warnings.filter((w) => w.includes('"dup"'))).toHaveLength(1);
    await registry.remove('other');
    await waitFor(() => client.stats().services['api']!.peers.length === 2);

    // The registered one leaves and its server dies: every request still succeeds, on `first`.
    await registry.remove('dup');
    await waitFor(() => client.stats().services['api']!.peers.length === 1);
    await second.kill();
    const after = await send(client, 30);
    expect(after.every((p) => p === 'first')).toBe(true);
    const left = client.stats().services['api']!.peers;
    expect(left.map((p) => p.port)).toEqual([first.port]);
    expect(removed.map((e) => e.peer.port)).toEqual([other.port, second.port]);
    expect(client.stats().services['api']!.failures).toBe(0);
  });
});
