import { afterEach, describe, expect, it } from 'vitest';
import { ConsulRegistry, RegistryAuthError, RegistryUnavailableError, type ConsulRegistryOptions, type WatchUpdate } from '../src/index.js';
import { delay, healthEntry, startConsulStub, waitUntil, type ConsulStub, type StubHandler } from './consul-stub.js';

const stubs: ConsulStub[] = [];
const registries: ConsulRegistry[] = [];

afterEach(async () => {
  await Promise.all(registries.splice(0).map((r) => r.close()));
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

async function setup(handler: StubHandler, options: ConsulRegistryOptions = {}) {
  const stub = await startConsulStub(handler);
  stubs.push(stub);
  const registry = new ConsulRegistry({
    address: stub.url,
    env: {},
    logger: { warn() {} },
    waitMs: 5_000,
    minWatchIntervalMs: 0,
    backoff: { minMs: 20, maxMs: 40 },
    ...options,
  });
  registries.push(registry);
  const updates: WatchUpdate[] = [];
  return { stub, registry, updates, listener: (u: WatchUpdate) => updates.push(u) };
}

const ids = (u: WatchUpdate | undefined) => (u?.ok ? u.instances.map((i) => i.id) : undefined);

/** Answers /v1/health/service from a script: one reply per request, then hangs (an idle blocking query). */
function scripted(replies: Array<{ index?: string; entries?: unknown }>): StubHandler {
  let n = 0;
  return () => {
    const next = replies[n++];
    if (!next) return 'hang';
    const headers: Record<string, string> = next.index === undefined ? {} : { 'x-consul-index': next.index };
    return { headers, json: next.entries ?? [] };
  };
}

describe('ConsulRegistry.watch (blocking queries)', () => {
  it('reads without an index first, then blocks on the last index with wait, delivering only changes', async () => {
    const a = healthEntry('web', 'web-1', 8080);
    const b = healthEntry('web', 'web-2', 8081);
    const { stub, registry, updates, listener } = await setup(
      scripted([
        { index: '10', entries: [a] },
        { index: '11', entries: [a] }, // an index bump without a change: not delivered
        { index: '12', entries: [a, b] },
      ]),
      { waitMs: 2_500 },
    );
    registry.watch('web', listener);
    await waitUntil(() => stub.requests.length === 4, 2_000, 'the fourth (idle) query');
    expect(stub.requests.map((r) => [r.query.get('index'), r.query.get('wait')])).toEqual([
      [null, null],
      ['10', '2500ms'],
      ['11', '2500ms'],
      ['12', '2500ms'],
    ]);
    expect(stub.requests.every((r) => r.path === '/v1/health/service/web' && r.query.has('passing'))).toBe(true);
    expect(updates.map(ids)).toEqual([['web-1'], ['web-1', 'web-2']]);
  });

  it('resets to a full read when the index goes backwards, delivering what it read', async () => {
    const a = healthEntry('web', 'web-1', 8080);
    const { stub, registry, updates, listener } = await setup(
      scripted([
        { index: '500', entries: [a] },
        { index: '7', entries: [] }, // the agent restarted and forgot everything
        { index: '8', entries: [] },
      ]),
    );
    registry.watch('web', listener);
    await waitUntil(() => stub.requests.length === 4, 2_000, 'the fourth query');
    expect(stub.requests.map((r) => r.query.get('index'))).toEqual([null, '500', null, '8']);
    expect(updates.map(ids)).toEqual([['web-1'], []]);
  });

  it('does a full read when the agent dropped the pooled connection while the loop paused', async () => {
    const a = healthEntry('web', 'web-1', 8080);
    const { stub, registry, updates, listener } = await setup(
      scripted([
        { index: '900', entries: [a] },
        { index: '12', entries: [] }, // a restarted agent: low index, registrations gone
      ]),
      { minWatchIntervalMs: 400 },
    );
    registry.watch('web', listener);
    await waitUntil(() => updates.length === 1, 2_000, 'the first update');
    // The agent restarts while the watch waits out minWatchIntervalMs: no request is in flight to fail.
    stub.closeIdleConnections();
    await waitUntil(() => stub.requests.length === 3, 3_000, 'the third query');
    expect(stub.requests.map((r) => r.query.get('index'))).toEqual([null, null, '12']);
    expect(updates.map(ids)).toEqual([['web-1'], []]);
  });

  it.each([
    ['missing', undefined],
    ['zero', '0'],
    ['not a number', 'abc'],
  ])('treats a %s X-Consul-Index as an error: reported, retried after backoff with a full read', async (_label, bad) => {
    const a = healthEntry('web', 'web-1', 8080);
    const { stub, registry, updates, listener } = await setup(
      scripted([
        { index: '3', entries: [a] },
        { index: bad, entries: [a] },
        { index: '4', entries: [a] },
      ]),
      { backoff: { minMs: 60, maxMs: 60 } },
    );
    registry.watch('web', listener);
    await waitUntil(() => stub.requests.length === 4, 3_000, 'the fourth query');
    expect(stub.requests.map((r) => r.query.get('index'))).toEqual([null, '3', null, '4']);
    expect(updates.map((u) => u.ok)).toEqual([true, false, true]);
    const failed = updates[1]!;
    expect(!failed.ok && failed.error).toBeInstanceOf(RegistryUnavailableError);
    expect(!failed.ok && failed.error.message).toMatch(/X-Consul-Index/);
    // Full jitter never goes below half the minimum delay.
    expect(stub.requests[2]!.at - stub.requests[1]!.at).toBeGreaterThanOrEqual(25);
  });

  it('keeps retrying through errors and recovers; a 403 arrives as RegistryAuthError', async () => {
    let n = 0;
    const { stub, registry, updates, listener } = await setup(() => {
      n++;
      if (n <= 2) return { status: 500, text: 'rpc error: No cluster leader' };
      if (n === 3) return { status: 403, text: 'Permission denied' };
      if (n === 4) return { headers: { 'x-consul-index': '9' }, json: [healthEntry('web', 'web-1', 8080)] };
      return 'hang';
    });
    registry.watch('web', listener);
    await waitUntil(() => updates.some((u) => u.ok), 3_000, 'the recovery');
    expect(updates.map((u) => (u.ok ? 'ok' : u.error.name))).toEqual([
      'RegistryUnavailableError',
      'RegistryUnavailableError',
      'RegistryAuthError',
      'ok',
    ]);
    expect(updates[0]!.ok === false && updates[0]!.error).toBeInstanceOf(RegistryUnavailableError);
    expect(updates[2]!.ok === false && updates[2]!.error).toBeInstanceOf(RegistryAuthError);
    expect(stub.requests.length).toBeGreaterThanOrEqual(4);
  });

  it('spaces query starts at least minWatchIntervalMs apart when every reply is a change', async () => {
    let index = 1;
    const { stub, registry, updates, listener } = await setup(
      () => {
        index++;
        return { headers: { 'x-consul-index': String(index) }, json: [healthEntry('web', `web-${index}`, 8080)] };
      },
      { minWatchIntervalMs: 100 },
    );
    const watch = registry.watch('web', listener);
    await waitUntil(() => stub.requests.length >= 7, 3_000, 'seven queries');
    watch.close();
    // Arrival times at the stub: the first request also paid for the connection, so measure from
    // the second. Jitter on the wire shifts single gaps but does not accumulate over a span.
    const starts = stub.requests.slice(1).map((r) => r.at);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(50);
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual((starts.length - 1) * 100 - 20);
    expect(updates.every((u) => u.ok)).toBe(true);
  });

  it('close() aborts a hanging blocking query at once, and no listener call follows', async () => {
    const a = healthEntry('web', 'web-1', 8080);
    const { stub, registry, updates, listener } = await setup(scripted([{ index: '5', entries: [a] }]), {
      waitMs: 600_000,
    });
    const watch = registry.watch('web', listener);
    await waitUntil(() => stub.requests.length === 2, 2_000, 'the blocking query');
    expect(stub.requests[1]!.query.get('wait')).toBe('600s');
    const delivered = updates.length;
    watch.close();
    await waitUntil(() => stub.requests[1]!.abortedAt !== undefined, 2_000, 'the blocking query to be dropped');
    await delay(100);
    expect(updates.length).toBe(delivered);
    expect(stub.requests).toHaveLength(2);
    watch.close(); // idempotent
  });

  it('registry.close() ends every watch and its in-flight query', async () => {
    const { stub, registry, updates, listener } = await setup((req) =>
      req.query.has('index') ? 'hang' : { headers: { 'x-consul-index': '5' }, json: [] },
    );
    registry.watch('web', listener);
    registry.watch('api', listener);
    await waitUntil(() => stub.requests.filter((r) => r.query.has('index')).length === 2, 2_000, 'two blocking queries');
    const delivered = updates.length;
    await registry.close();
    await waitUntil(
      () => stub.requests.filter((r) => r.query.has('index')).every((r) => r.abortedAt !== undefined),
      2_000,
      'both blocking queries to be dropped',
    );
    await delay(50);
    expect(updates.length).toBe(delivered);
  });

  it('does not retry a dropped blocking query on its own: the error reaches the loop, which reads afresh', async () => {
    const a = healthEntry('web', 'web-1', 8080);
    const { stub, registry, updates, listener } = await setup((req) => {
      if (!req.query.has('index')) return { headers: { 'x-consul-index': '30' }, json: [a] };
      return stub.matching('/v1/health/').length === 2 ? 'reset' : 'hang';
    });
    registry.watch('web', listener);
    await waitUntil(() => stub.requests.length === 4, 2_000, 'the fourth query');
    expect(stub.requests.map((r) => r.query.get('index'))).toEqual([null, '30', null, '30']);
    expect(updates.map((u) => u.ok)).toEqual([true, false, true]);
  });

  it('delivers a body that is not an array as an error', async () => {
    const { registry, updates, listener } = await setup(() => ({ headers: { 'x-consul-index': '2' }, json: 'oops' }));
    const watch = registry.watch('web', listener);
    await waitUntil(() => updates.length >= 1, 2_000, 'an update');
    watch.close();
    expect(updates[0]!.ok).toBe(false);
  });

  it('applies the filter to what it delivers', async () => {
    const { registry, updates, listener } = await setup(
      scripted([
        {
          index: '2',
          entries: [healthEntry('web', 'web-1', 80, { tags: ['v1'] }), healthEntry('web', 'web-2', 80, { tags: ['v2'] })],
        },
      ]),
    );
    registry.watch('web', listener, { filter: { tags: ['v2'] } });
    await waitUntil(() => updates.length >= 1, 2_000, 'an update');
    expect(updates.map(ids)).toEqual([['web-2']]);
  });

  it('validates its arguments synchronously, naming the field', async () => {
    const { registry } = await setup(() => 'hang');
    expect(() => registry.watch('', () => {})).toThrow(expect.objectContaining({ field: 'service' }));
    expect(() => registry.watch('web', 'nope' as never)).toThrow(expect.objectContaining({ field: 'listener' }));
  });
});
