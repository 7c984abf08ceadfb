import { afterEach, describe, expect, it } from 'vitest';
import { RequestDeadline, parseTimeout, runWithDeadline } from '@peerlb/deadline';
import { AbortedError, createClient, DeadlineError, type Client } from '../src/index.js';
import { delay, fieldOf, startPeer, TestRegistry, type TestPeer } from './support/client-testkit.js';

/** Issue 15, in one process: what a call takes over from the request being handled around it. */
describe('deadline propagation (client side)', () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(options: Partial<Parameters<typeof createClient>[0]> = {}): Promise<{ client: Client; peer: TestPeer; seen: (string | undefined)[] }> {
    const seen: (string | undefined)[] = [];
    const peer = await startPeer('p1', (req, res) => {
      const header = req.headers['x-peerlb-timeout'];
      seen.push(typeof header === 'string' ? header : undefined);
      res.end('ok');
    });
    const registry = new TestRegistry();
    await registry.add('svc', peer);
    const client = createClient({ registry, timeoutMs: 5_000, ...options });
    cleanups.push(() => peer.close(), () => registry.close(), () => client.close());
    return { client, peer, seen };
  }

  it('sends its own time left, minus the allowance, outside a handled request', async () => {
    const { client, seen } = await setup();
    await (await client.request({ service: 'svc', path: '/' })).body.dump();
    const ms = parseTimeout(seen[0])!;
    expect(ms).toBeGreaterThan(4_900);
    expect(ms).toBeLessThanOrEqual(5_000 - 10);
  });

  it('inherits the handled request budget minus the allowance, through request() and dispatcher()', async () => {
    const { client, seen } = await setup();
    const deadline = new RequestDeadline(300);
    cleanups.push(() => deadline.dispose());
    await runWithDeadline(deadline, async () => {
      await (await client.request({ service: 'svc', path: '/' })).body.dump();
      const res = await client.dispatcher('svc').request({ origin: 'http://svc', path: '/', method: 'GET' });
      await res.body.dump();
    });
    for (const header of seen) {
      const ms = parseTimeout(header)!;
      expect(ms).toBeGreaterThan(0);
      // 300 ms, minus 10 kept back by the call, minus 10 for the way to the peer.
      expect(ms).toBeLessThanOrEqual(280);
    }
    expect(seen).toHaveLength(2);
  });

  it('fails at once with DeadlineError (inherited), nothing sent, when no time is left', async () => {
    const { client, peer } = await setup();
    const deadline = new RequestDeadline(5); // less than the 10 ms allowance
    cleanups.push(() => deadline.dispose());
    const err = await runWithDeadline(deadline, () => client.request({ service: 'svc', path: '/' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeadlineError);
    expect((err as DeadlineError).inherited).toBe(true);
    expect((err as DeadlineError).peersTried).toEqual([]);
    expect(peer.requests).toBe(0);
  });

  it('ends the call when the handled request is cancelled (its caller went away)', async () => {
    const { client, peer } = await setup();
    peer.setHandler(() => {}); // never answers
    const deadline = new RequestDeadline(10_000);
    cleanups.push(() => deadline.dispose());
    const call = runWithDeadline(deadline, () => client.request({ service: 'svc', path: '/' }));
    await delay(50);
    deadline.cancel(new Error('caller left'));
    const err = await call.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortedError);
  });

  it('propagateDeadline: false sends no header and inherits nothing', async () => {
    const { client, seen } = await setup({ propagateDeadline: false });
    const deadline = new RequestDeadline(5);
    cleanups.push(() => deadline.dispose());
    await runWithDeadline(deadline, async () => (await client.request({ service: 'svc', path: '/' })).body.dump());
    expect(seen).toEqual([undefined]);
  });

  it('refuses bad options naming the field', async () => {
    const registry = new TestRegistry();
    cleanups.push(() => registry.close());
    expect(fieldOf(() => createClient({ registry, propagateDeadline: 'yes' as unknown as boolean }))).toBe('propagateDeadline');
    expect(fieldOf(() => createClient({ registry, deadlineAllowanceMs: -1 }))).toBe('deadlineAllowanceMs');
    expect(fieldOf(() => createClient({ registry, hedge: { delayMs: -5 } }))).toBe('hedge.delayMs');
    expect(fieldOf(() => createClient({ registry, hedge: { delayMs: 'p95', maxExtra: 9 } }))).toBe('hedge.maxExtra');
    const client = createClient({ registry });
    cleanups.push(() => client.close());
    const err = await client.request({ service: 'svc', path: '/', hedge: { delayMs: 'fast' as never } }).catch((e: unknown) => e);
    expect((err as { field?: string }).field).toBe('hedge.delayMs');
  });
});
