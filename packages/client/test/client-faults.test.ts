/** Issue 12, items 6-8: client faults, each with a regression test named after the behaviour. */
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import {
  createClient,
  InvalidOptionsError,
  random,
  roundRobin,
  seededRandom,
  type Client,
  type ClientOptions,
  type RetryEvent,
} from '../src/index.js';
import { DeadlineQueue, type Deadline } from '../src/call/deadlines.js';
import { startPeer, TestRegistry, type Handler, type TestPeer } from './support/client-testkit.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const ok: Handler = (_req, res) => res.end('ok');
/** Accepts the connection and the request, never answers. */
const hung: Handler = () => {};

async function cluster(handlers: Handler[], options: Partial<ClientOptions> = {}) {
  const registry = new TestRegistry();
  cleanups.push(() => registry.close());
  const peers: TestPeer[] = [];
  for (const [i, handler] of handlers.entries()) {
    const peer = await startPeer(`api-${i}`, handler);
    cleanups.push(() => peer.close());
    await registry.add('api', peer);
    peers.push(peer);
  }
  const client: Client = createClient({ registry, random: seededRandom(3), ...options });
  cleanups.push(() => client.close());
  return { client, peers };
}

describe('issue 12.6: a hung peer (accepts TCP, never answers)', () => {
  for (const [name, balancer] of [
    ['roundRobin()', roundRobin()],
    ['random()', random()],
  ] as const) {
    it(`regression: a hung peer was never ejected: a call deadline without response headers now counts against it (${name})`, async () => {
      const { client, peers } = await cluster([hung, ok], {
        balancer,
        retry: false,
        breaker: false,
        outlier: { consecutiveFailures: 3, baseEjectionMs: 60_000 },
      });
      const ejected: string[] = [];
      client.on('peer:ejected', (e) => ejected.push(e.peer.id));
      let deadlines = 0;
      for (let i = 0; i < 40 && ejected.length === 0; i++) {
        const res = await client.request({ service: 'api', path: '/', timeoutMs: 150 }).catch((e: unknown) => e);
        if ((res as { code?: string }).code === 'PEERLB_DEADLINE') deadlines++;
        else await (res as { body: { dump(): Promise<void> } }).body.dump();
      }
      expect(ejected).toEqual(['api-0']);
      expect(deadlines).toBe(3);
      // Ejected: every call now goes to the peer that answers.
      const before = peers[0]!.requests;
      for (let i = 0; i < 10; i++) {
        const res = await client.request({ service: 'api', path: '/', timeoutMs: 1000 });
        expect(await res.body.text()).toBe('ok');
      }
      expect(peers[0]!.requests).toBe(before);
      expect(client.stats().services.api!.peers.find((p) => p.id === 'api-0')!.failures).toBe(3);
    });
  }

  it('regression: a hung peer kept its breaker closed: no headers within the deadline opens it', async () => {
    const { client } = await cluster([hung], {
      outlier: false,
      breaker: { volumeThreshold: 2, errorThresholdPercentage: 50 },
    });
    for (let i = 0; i < 3; i++) {
      await client.request({ service: 'api', path: '/', timeoutMs: 100 }).catch(() => undefined);
    }
    expect(client.stats().services.api!.peers[0]!.breaker).toBe('open');
  });

  it("the dispatcher: a caller's AbortSignal.timeout() before the headers counts against the hung peer too", async () => {
    const { client } = await cluster([hung, ok], {
      balancer: roundRobin(),
      retry: false,
      breaker: false,
      outlier: { consecutiveFailures: 2 },
    });
    const ejected: string[] = [];
    client.on('peer:ejected', (e) => ejected.push(e.peer.id));
    const dispatcher = client.dispatcher('api');
    for (let i = 0; i < 10 && ejected.length === 0; i++) {
      const res = await request('http://api/', { dispatcher, signal: AbortSignal.timeout(100) }).catch((e: unknown) => e);
      if (!(res instanceof Error)) await (res as { body: { dump(): Promise<void> } }).body.dump();
    }
    expect(ejected).toEqual(['api-0']);
  });

  it('attemptTimeoutMs: a hung peer costs one attempt, the call is retried on another peer in time', async () => {
    const { client, peers } = await cluster([hung, ok], {
      balancer: roundRobin(),
      attemptTimeoutMs: 100,
      timeoutMs: 10_000,
    });
    const retries: RetryEvent[] = [];
    client.on('retry', (e) => retries.push(e));
    const started = performance.now();
    for (let i = 0; i < 4; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      expect(await res.body.text()).toBe('ok');
    }
    // Each detour costs about attemptTimeoutMs, far from the 10 s deadline (generous bound for a loaded machine).
    expect(performance.now() - started).toBeLessThan(5000);
    expect(peers[1]!.requests).toBe(4);
    expect(retries.length).toBeGreaterThan(0);
    expect(retries.every((r) => (r.error as { code?: string }).code === 'PEERLB_ATTEMPT_TIMEOUT')).toBe(true);
    expect(retries[0]!.peer.id).toBe('api-0');
  });

  it('attemptTimeoutMs: a POST that timed out on a peer is not repeated (it may have run there)', async () => {
    const { client, peers } = await cluster([hung], { attemptTimeoutMs: 100 });
    const err = await client.request({ service: 'api', path: '/', method: 'POST', body: 'x' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PEERLB_UPSTREAM', reason: 'not-retryable' });
    expect(peers[0]!.requests).toBe(1);
    expect((err as Error).cause).toMatchObject({ code: 'PEERLB_ATTEMPT_TIMEOUT', timeoutMs: 100 });
  });
});

describe('issue 12.7: durations above 2^31-1 ms', () => {
  const tooLong = 2 ** 31;
  const cases: Array<[string, Partial<ClientOptions>]> = [
    ['timeoutMs', { timeoutMs: tooLong }],
    ['attemptTimeoutMs', { attemptTimeoutMs: tooLong }],
    ['retireGraceMs', { retireGraceMs: tooLong }],
    ['outlier.baseEjectionMs', { outlier: { baseEjectionMs: tooLong } }],
    ['outlier.maxEjectionMs', { outlier: { maxEjectionMs: tooLong } }],
    ['breaker.resetTimeoutMs', { breaker: { resetTimeoutMs: tooLong } }],
    ['breaker.rollingCountTimeoutMs', { breaker: { rollingCountTimeoutMs: tooLong } }],
    ['breaker.timeoutMs', { breaker: { timeoutMs: tooLong } }],
    ['retry.budget.windowMs', { retry: { budget: { windowMs: tooLong } } }],
    ['retry.maxRetryAfterMs', { retry: { maxRetryAfterMs: tooLong } }],
    ['discovery.maxStalenessMs', { discovery: { maxStalenessMs: tooLong } }],
    ['discovery.emptyGraceMs', { discovery: { emptyGraceMs: tooLong } }],
    ['pool.keepAliveTimeout', { pool: { keepAliveTimeout: tooLong } }],
    ['pool.connectTimeout', { pool: { connectTimeout: tooLong } }],
  ];

  // Regression for outlier.*, breaker.*, retry.budget.windowMs (accepted before: Node made them
  // 1 ms timers); the others were refused already and must stay so.
  it.each(cases)('%s above 2^31-1 ms is refused with InvalidOptionsError naming the field', (field, options) => {
    const registry = new TestRegistry();
    cleanups.push(() => registry.close());
    let error: unknown;
    try {
      createClient({ registry, ...options }).close();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error).toMatchObject({ field });
    // The largest valid value is still accepted.
    const atLimit = JSON.parse(JSON.stringify(options).replace(String(tooLong), String(tooLong - 1))) as Partial<ClientOptions>;
    if (field !== 'outlier.baseEjectionMs') void createClient({ registry, ...atLimit }).close();
  });

  it('regression: a per-call timeoutMs above 2^31-1 ms is refused too', async () => {
    const { client } = await cluster([ok]);
    await expect(client.request({ service: 'api', path: '/', timeoutMs: tooLong })).rejects.toMatchObject({
      code: 'PEERLB_INVALID_OPTIONS',
      field: 'timeoutMs',
    });
  });
});

describe('issue 12.8: client.close() and deadline timers', () => {
  it('regression: a closed client kept its deadline timers armed until timeoutMs passed', async () => {
    const { client } = await cluster([ok], { timeoutMs: 600_000 });
    for (let i = 0; i < 3; i++) {
      const res = await client.request({ service: 'api', path: '/' });
      await res.body.text();
    }
    const deadlines = (client as unknown as { deadlines: DeadlineQueue }).deadlines;
    // Open, a finished call's timer stays armed (re-arming per call would cost more than it saves).
    expect(deadlines.timers).toBe(1);
    await client.close();
    expect(deadlines.timers).toBe(0);
  });

  it('a call still in flight at close keeps its deadline; its timer goes when it ends', async () => {
    const queue = new DeadlineQueue(() => {});
    const expired: string[] = [];
    const entry = (name: string): Deadline => ({
      dueAt: 0,
      previousDue: undefined,
      nextDue: undefined,
      lane: undefined,
      expire: () => expired.push(name),
    });
    const finished = entry('finished');
    const inFlight = entry('in flight');
    queue.add(finished, 60_000);
    queue.remove(finished);
    queue.add(inFlight, 50);
    expect(queue.timers).toBe(2);
    queue.close();
    expect(queue.timers).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(expired).toEqual(['in flight']);
    expect(queue.timers).toBe(0);
  });
});
