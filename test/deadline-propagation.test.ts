import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client } from '@peerlb/client';
import { LocalRegistry, silentLogger } from '@peerlb/registry';
import { HopMesh, type Hop } from './support/hop-processes.js';
import { waitFor } from './support/wait.js';

/**
 * Issue 15: the first caller's deadline travels with the request through every hop (real
 * processes, real sockets, a shared local registry): each hop sees less time than the one before,
 * the last hop stops working when the budget runs out, and a request that arrives with no time
 * left is never run.
 */
describe('deadlines across hops (issue 15)', () => {
  let mesh: HopMesh;
  let a: Hop;
  let b: Hop;
  let c: Hop;
  let registry: LocalRegistry;
  let client: Client;

  beforeAll(async () => {
    mesh = await HopMesh.create();
    c = await mesh.start({ service: 'hop-c', workMs: 5_000 });
    b = await mesh.start({ service: 'hop-b', next: 'hop-c', workMs: 20 });
    a = await mesh.start({ service: 'hop-a', next: 'hop-b', workMs: 20 });
    registry = new LocalRegistry({ dir: mesh.dir, rescanIntervalMs: 100, logger: silentLogger });
    client = createClient({ registry, timeoutMs: 800, retry: false });
  });

  afterAll(async () => {
    await client?.close();
    await registry?.close();
    await mesh?.close();
  });

  it('a budget crosses three hops, shrinking at each, and the last hop stops working when it runs out', async () => {
    const started = performance.now();
    const outcome = await client.request({ service: 'hop-a', path: '/work' }).then(
      async (res) => ({ status: res.statusCode, code: undefined, body: await res.body.text() }),
      (err: unknown) => ({ status: undefined, code: (err as { code?: string }).code, body: '' }),
    );
    const elapsedMs = performance.now() - started;
    // Either our own deadline fired, or the chain gave up first and hop-a answered 504: each hop
    // ends its call a little before its caller does.
    expect(outcome.code === 'PEERLB_DEADLINE' || outcome.status === 504, JSON.stringify(outcome)).toBe(true);
    // The first caller's own deadline: nothing down the chain can hold it much longer.
    expect(elapsedMs).toBeLessThan(800 + 1_000);

    await waitFor(async () => (await c.stats()).counters.stoppedByDeadline === 1, 10_000, 'hop-c to stop its work');
    const [sa, sb, sc] = await Promise.all([a.stats(), b.stats(), c.stats()]);
    const budgetA = sa.counters.budgetsSeenMs[0]!;
    const budgetB = sb.counters.budgetsSeenMs[0]!;
    const budgetC = sc.counters.budgetsSeenMs[0]!;
    expect(budgetA).toBeGreaterThan(0);
    expect(budgetA).toBeLessThanOrEqual(800);
    // Each hop inherits what is left after the previous hop's work (20 ms) and allowance.
    expect(budgetB).toBeLessThan(budgetA);
    expect(budgetC).toBeLessThan(budgetB);
    expect(budgetC).toBeGreaterThan(0);
    // hop-c was asked for 5 s of work: it stopped at the deadline and never finished.
    expect(sc.counters.completed).toBe(0);
    // At most the slice that was running when the budget ran out.
    expect(sc.counters.workAfterDeadlineMs).toBeLessThanOrEqual(5);
    expect(sc.serving.deadline?.withDeadline).toBe(1);
    // The chain was undone from the far end: each hop's call failed on the deadline.
    expect(sa.counters.completed + sb.counters.completed).toBe(0);
  });

  it('a request that arrives with no time left is answered 504 at once and never run', async () => {
    const before = await c.stats();
    const res = await fetch(`${c.url}/work`, { headers: { 'x-peerlb-timeout': '0m' }, signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({ error: 'deadline exceeded', code: 'PEERLB_DEADLINE_EXPIRED' });
    const after = await c.stats();
    expect(after.counters.started).toBe(before.counters.started);
    expect(after.serving.deadline!.expired).toBe(before.serving.deadline!.expired + 1);
  });

  it('hostile x-peerlb-timeout values reaching a real instance are ignored or clamped, and it keeps serving', async () => {
    await fetch(`${c.url}/slow?ms=0`, { method: 'POST', signal: AbortSignal.timeout(5_000) });
    const heads = [
      'x-peerlb-timeout: -1m',
      'x-peerlb-timeout: 1e9m',
      'x-peerlb-timeout: 99999999H',
      'x-peerlb-timeout: \u00ff\u00fe',
      'x-peerlb-timeout: 1S, garbage, 2S, -3m',
      Array.from({ length: 100 }, (_, i) => `x-peerlb-timeout: ${i}S`).join('\r\n'),
      `x-peerlb-timeout: ${'1'.repeat(4_000)}m`,
    ];
    for (const head of heads) {
      const answer = await raw(c.url, `GET /work HTTP/1.1\r\nhost: x\r\n${head}`);
      expect(answer.slice(0, 12), head.slice(0, 40)).toBe('HTTP/1.1 200');
    }
    const stats = await c.stats();
    // Each clamped or usable value gave a budget no larger than the 5-minute default maximum.
    for (const budget of stats.counters.budgetsSeenMs) if (budget !== null) expect(budget).toBeLessThanOrEqual(300_000);
  });
});

function raw(url: string, head: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer')));
    socket.write(`${head}\r\nconnection: close\r\n\r\n`, 'latin1');
  });
}
