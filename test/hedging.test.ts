import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, roundRobin, type Client, type ClientEventMap } from '@peerlb/client';
import { LocalRegistry, silentLogger } from '@peerlb/registry';
import { HopMesh, type Hop } from './support/hop-processes.js';
import { waitFor } from './support/wait.js';

/**
 * Issue 15: hedged requests against real processes. One instance of `tail` is slow, one fast;
 * round robin sends every other call to the slow one first, so those calls are hedged.
 */
describe('hedged requests (issue 15)', () => {
  let mesh: HopMesh;
  let slow: Hop;
  let fast: Hop;
  let registry: LocalRegistry;
  const clients: Client[] = [];

  const newClient = (options: Partial<Parameters<typeof createClient>[0]> = {}): Client => {
    const client = createClient({ registry, balancer: roundRobin(), timeoutMs: 10_000, logger: silentLogger, ...options });
    clients.push(client);
    return client;
  };

  const hedgesOf = (client: Client) => client.stats().services.tail!.hedges;

  beforeAll(async () => {
    mesh = await HopMesh.create();
    slow = await mesh.start({ service: 'tail', workMs: 3_000 });
    fast = await mesh.start({ service: 'tail', workMs: 0 });
    registry = new LocalRegistry({ dir: mesh.dir, rescanIntervalMs: 100, logger: silentLogger });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await registry?.close();
    await mesh?.close();
  });

  it('a hedge to another peer answers first; the loser is aborted at once and its load released', async () => {
    const client = newClient({ hedge: { delayMs: 100 } });
    const events: { [K in 'hedge' | 'hedge:won' | 'attempt:cancelled']: ClientEventMap[K][0][] } = {
      hedge: [],
      'hedge:won': [],
      'attempt:cancelled': [],
    };
    client.on('hedge', (e) => events.hedge.push(e));
    client.on('hedge:won', (e) => events['hedge:won'].push(e));
    client.on('attempt:cancelled', (e) => events['attempt:cancelled'].push(e));
    const before = await slow.stats();
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      const res = await client.request({ service: 'tail', path: '/work' });
      const body = JSON.parse(await res.body.text()) as { id: string };
      expect(res.statusCode).toBe(200);
      expect(body.id).toBe(fast.id);
      // Never the slow peer's 3 s: at most the hedge delay plus the fast answer.
      expect(performance.now() - started).toBeLessThan(2_000);
      // The loser's load is released when the winner answers, not when the loser's peer gives up.
      const slowPeer = client.stats().services.tail!.peers.find((p) => p.id === slow.id)!;
      expect(slowPeer.inFlight).toBe(0);
    }
    const hedges = hedgesOf(client);
    // Every call that round robin sent to the slow peer first was hedged, and the hedge won.
    const n = hedges.sent;
    expect(n).toBeGreaterThanOrEqual(2);
    expect(hedges).toEqual({ sent: n, won: n, cancelled: n });
    expect(events.hedge.map((e) => e.peer.id)).toEqual(Array(n).fill(fast.id));
    expect(events.hedge.every((e) => e.attempt === 2 && e.delayMs === 100)).toBe(true);
    expect(events['hedge:won'].map((e) => e.peer.id)).toEqual(Array(n).fill(fast.id));
    expect(events['attempt:cancelled'].map((e) => e.peer.id)).toEqual(Array(n).fill(slow.id));
    // The slow peer saw both of its requests aborted (its connection closed before it answered)
    // and stopped working on them.
    await waitFor(
      async () => {
        const s = await slow.stats();
        return s.serving.deadline!.cancelled - before.serving.deadline!.cancelled === n;
      },
      10_000,
      'the slow peer to see its requests cancelled',
    );
    const after = await slow.stats();
    expect(after.counters.completed).toBe(before.counters.completed);
    expect(after.counters.stoppedByDeadline - before.counters.stoppedByDeadline).toBe(n);
  });

  it('hedges through client.dispatcher() too', async () => {
    const client = newClient({ hedge: { delayMs: 100 } });
    const dispatcher = client.dispatcher('tail');
    // Round robin sends every other call to the slow peer first once the client sees both peers;
    // a loaded machine can hand a new client's first answer one peer, so call until a hedge was
    // needed (bounded), each answered by the fast peer.
    for (let i = 0; i < 8 && (client.stats().services.tail?.hedges.sent ?? 0) === 0; i++) {
      // Dispatcher.request(): undici's own request API, over client.dispatcher()'s dispatch().
      const res = await dispatcher.request({ origin: 'http://tail', path: '/work', method: 'GET' });
      const body = (await res.body.json()) as { id: string };
      expect(body.id).toBe(fast.id);
    }
    const hedges = hedgesOf(client);
    expect(hedges.sent).toBeGreaterThanOrEqual(1);
    expect(hedges).toEqual({ sent: hedges.sent, won: hedges.sent, cancelled: hedges.sent });
  });

  it('does not hedge a call that may not be repeated, nor one with hedge: false', async () => {
    const client = newClient({ hedge: { delayMs: 50 } });
    const started = performance.now();
    await Promise.all([
      client.request({ service: 'tail', path: '/work', method: 'POST', body: 'x' }).then((r) => r.body.dump()),
      client.request({ service: 'tail', path: '/work', hedge: false }).then((r) => r.body.dump()),
    ]);
    // One of the two went to the slow peer and was left alone.
    expect(performance.now() - started).toBeGreaterThan(2_500);
    expect(hedgesOf(client).sent).toBe(0);
  });

  it('hedges and retries share one budget: with none left, no hedge is sent', async () => {
    const client = newClient({ hedge: { delayMs: 50 }, retry: { budget: { ratio: 0, minPerSec: 0 } } });
    for (let i = 0; i < 2; i++) await (await client.request({ service: 'tail', path: '/work' })).body.dump();
    expect(hedgesOf(client).sent).toBe(0);
  });

  it('when every peer is as slow (overload), hedges stop winning and switch themselves off', async () => {
    await Promise.all([
      fetch(`${slow.url}/slow?ms=300`, { method: 'POST' }),
      fetch(`${fast.url}/slow?ms=300`, { method: 'POST' }),
    ]);
    try {
      const client = newClient({ hedge: { delayMs: 20 } });
      const calls = 60;
      let next = 0;
      await Promise.all(
        Array.from({ length: 6 }, async () => {
          while (next++ < calls) await (await client.request({ service: 'tail', path: '/work' })).body.dump();
        }),
      );
      const hedges = hedgesOf(client);
      // Every call waited longer than the delay: without the switch, 60 hedges. Hedges that lose
      // spend the credit they started with (10; a rare win earns 2 back), then hedging stays off.
      expect(hedges.won).toBeLessThanOrEqual(hedges.sent / 2);
      expect(hedges.sent).toBeLessThanOrEqual(10 + 2 * hedges.won);
      expect(hedges.sent).toBeLessThan(calls / 2);
      expect(hedges.cancelled).toBe(hedges.sent);
    } finally {
      await Promise.all([
        fetch(`${slow.url}/slow?ms=3000`, { method: 'POST' }),
        fetch(`${fast.url}/slow?ms=0`, { method: 'POST' }),
      ]);
    }
  });
});
